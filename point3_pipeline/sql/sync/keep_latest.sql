-- One row per signature: a payment returned by two windows of the batch (exactly at midnight)
-- is kept from the later one; without an accept time it belongs to that day.
DELETE FROM incoming AS i
USING (
    SELECT signature, max(source_day) AS latest
    FROM incoming
    GROUP BY signature
    HAVING count(*) > 1
) AS repeated
WHERE i.signature = repeated.signature AND i.source_day < repeated.latest;
