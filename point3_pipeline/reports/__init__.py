"""Monthly Excel reports (tax, reconciliation), their versions and the report index."""

from point3_pipeline.reports.index import write_index
from point3_pipeline.reports.reconciliation import render_reconciliation_report
from point3_pipeline.reports.tax import render_tax_report
from point3_pipeline.reports.verify import verify_report
from point3_pipeline.reports.versions import ReportResult

__all__ = [
    "ReportResult",
    "render_reconciliation_report",
    "render_tax_report",
    "verify_report",
    "write_index",
]
