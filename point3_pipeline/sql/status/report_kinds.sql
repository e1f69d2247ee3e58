-- The kinds of workbook the merchant has versions of, for the latest of each.
SELECT DISTINCT kind FROM report_versions ORDER BY kind
