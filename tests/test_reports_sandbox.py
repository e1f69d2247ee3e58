"""Both workbooks on data synced from the sandbox: every total equals the sandbox's own figures."""

from __future__ import annotations

from collections import defaultdict

import pytest

from point3_pipeline import sync
from point3_pipeline.client import Point3Client
from point3_pipeline.reports import render_reconciliation_report, render_tax_report, verify_report
from point3_pipeline.warehouse import Warehouse
from tests.conftest import FAST_RETRY, make_sandbox, sandbox_days, sandbox_first_day
from tests.tax_fixtures import refresh

pytestmark = pytest.mark.slow


def _expected(server) -> dict[str, dict]:
    """month -> the payment-month figures the reconciliation shows, from the sandbox's own records."""
    out: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for day, order in sandbox_days(server):
        month = out[f"{day:%Y-%m}"]
        month["payment_count"] += 1
        month["total_charge"] += order["totalCharge"]
        month["vat"] += order["vat"]
        month["canceled_count"] += order["isCanceled"]
        month["canceled_total"] += order["totalCharge"] if order["isCanceled"] else 0
        month["net_total"] += 0 if order["isCanceled"] else order["totalCharge"]
    return out


def test_workbooks_match_the_sandbox(tmp_path):
    with make_sandbox(days=20, per_day=25, seed=11) as server:
        warehouse = Warehouse(tmp_path / "point3.duckdb")
        with Point3Client(server.url, server.key, retry=FAST_RETRY, page_size=30) as client:
            now = server.state.clock.now()
            sync.sync_range(client, warehouse, sandbox_first_day(server), now.date(), clock=server.state.clock.now)
            sync.observe_settlement(client, warehouse, clock=server.state.clock.now)
        refresh(warehouse)
        expected = _expected(server)
    for month, want in expected.items():
        # every payment the sandbox had was first read in this one sync: a cancelled one is
        # 취소일 미상 and files in its payment's own month, so the month's filing total is its net
        result = render_tax_report(warehouse, month, tmp_path / "reports", now=now)
        assert (result.totals["sale_count"], result.totals["canceled_count"]) == (want["payment_count"], want["canceled_count"])
        assert result.totals["total_charge"] == want["net_total"]
        assert result.totals["canceled_date_unknown_count"] == want["canceled_count"]
        assert verify_report(warehouse, result.path) == []
        recon = render_reconciliation_report(warehouse, month, tmp_path / "reports", now=now)
        assert {k: recon.totals[k] for k in want} == dict(want)
        assert verify_report(warehouse, recon.path) == []
    assert not result.is_final  # the sandbox's current month is still running
