-- The totals recorded for one workbook version.
SELECT CAST(totals AS VARCHAR) FROM report_versions WHERE kind = $kind AND period = $period AND version = $version;
