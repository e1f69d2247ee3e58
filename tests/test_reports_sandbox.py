"""Both workbooks on data synced from the sandbox: every total equals the sandbox's own figures."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from openpyxl import load_workbook

from point3_pipeline import sync
from point3_pipeline.client import Point3Client
from point3_pipeline.reports import render_reconciliation_report, render_tax_report, tax, verify_report
from point3_pipeline.warehouse import Warehouse
from tests.conftest import FAST_RETRY, make_sandbox, sandbox_days, sandbox_first_day

pytestmark = pytest.mark.slow


def _expected(server) -> dict[str, dict]:
    """month -> {totals, per day, per code}, from the sandbox's own records."""
    out: dict[str, dict] = defaultdict(lambda: {"totals": defaultdict(int), "days": defaultdict(lambda: defaultdict(int)),
                                                  "codes": defaultdict(lambda: defaultdict(int))})  # fmt: skip
    for day, order in sandbox_days(server):
        month = out[f"{day:%Y-%m}"]
        code = order.get("cultureExpenseType") or "unknown"
        for bucket in (month["totals"], month["days"][day], month["codes"][code]):
            bucket["payment_count"] += 1
            bucket["total_charge"] += order["totalCharge"]
            bucket["supply_value"] += order["taxFreeAmount"]
            bucket["vat"] += order["vat"]
            bucket["canceled_count"] += order["isCanceled"]
            bucket["canceled_total"] += order["totalCharge"] if order["isCanceled"] else 0
            bucket["net_total"] += 0 if order["isCanceled"] else order["totalCharge"]
    return out


def test_workbooks_match_the_sandbox(tmp_path):
    with make_sandbox(days=20, per_day=25, seed=11) as server:
        warehouse = Warehouse(tmp_path / "point3.duckdb")
        with Point3Client(server.url, server.key, retry=FAST_RETRY, page_size=30) as client:
            now = server.state.clock.now()
            sync.sync_range(client, warehouse, sandbox_first_day(server), now.date(), clock=server.state.clock.now)
            sync.observe_settlement(client, warehouse, clock=server.state.clock.now)
        warehouse.refresh_derived()
        expected = _expected(server)
    for month, want in expected.items():
        result = render_tax_report(warehouse, month, tmp_path / "reports", now=now)
        assert {k: result.totals[k] for k in want["totals"]} == dict(want["totals"]), month
        assert verify_report(warehouse, result.path) == []
        wb = load_workbook(result.path)
        daily = {r[0].value.date(): dict(zip(tax.FIGURE_KEYS, [c.value for c in r[3:]]))
                 for r in wb[tax.DAILY].iter_rows() if isinstance(r[0].value, dt.datetime)}  # fmt: skip
        for day, figures in want["days"].items():
            assert {k: daily[day][k] for k in figures if k in daily[day]} == {k: v for k, v in figures.items() if k in daily[day]}
        codes = {r[1].value: dict(zip(tax.FIGURE_KEYS, [c.value for c in r[3:]]))
                 for r in wb[tax.CULTURE].iter_rows() if r[1].value in ("a", "b", "c", "d", "f", "g", "—")}  # fmt: skip
        for code, figures in want["codes"].items():
            got = codes["—" if code == "unknown" else code]
            assert {k: got[k] for k in figures if k in got} == {k: v for k, v in figures.items() if k in got}
        recon = render_reconciliation_report(warehouse, month, tmp_path / "reports", now=now)
        assert {k: recon.totals[k] for k in want["totals"]} == dict(want["totals"])
        assert verify_report(warehouse, recon.path) == []
    assert not result.is_final  # the sandbox's current month is still running
