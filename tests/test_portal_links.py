"""Links into the reports portal: the page of a period's workbook versions."""

from __future__ import annotations

import pytest

from point3_pipeline.reports.links import version_page_url


@pytest.mark.parametrize(("portal", "merchant", "kind", "period", "expected"), [
    ("https://reports.example.kr", "default", "tax", "2026-11",
     "https://reports.example.kr/m/default/versions/tax/2026-11"),
    ("https://reports.example.kr/", "arthall", "vat", "2026-Q3",
     "https://reports.example.kr/m/arthall/versions/vat/2026-Q3"),
    ("https://example.kr/point3", "merchant-01", "reconciliation", "2026-02",
     "https://example.kr/point3/m/merchant-01/versions/reconciliation/2026-02"),
    # A segment is one segment whatever it holds: no slash or query escapes it.
    ("http://127.0.0.1:8040", "a/b", "tax", "2026?x=1", "http://127.0.0.1:8040/m/a%2Fb/versions/tax/2026%3Fx%3D1"),
])
def test_version_page_url(portal, merchant, kind, period, expected):
    assert version_page_url(portal, merchant, kind, period) == expected
