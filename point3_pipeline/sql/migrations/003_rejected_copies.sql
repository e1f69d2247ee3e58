-- Two byte-identical bad records share one rejected_records row (keyed by the text's hash):
-- keep how many copies the latest read of their window returned, so none goes uncounted.
ALTER TABLE rejected_records ADD COLUMN copies INTEGER NOT NULL DEFAULT 1;
