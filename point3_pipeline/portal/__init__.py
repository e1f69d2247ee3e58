"""The reports portal: accountants log in and download their merchants' workbooks and filing
CSVs from a web page, each person seeing only the merchants they may see (see README, Reports
portal). The library part: the web app, its own store of people, sessions and the audit log."""
