"""The reports index: every period kind in its own section, each period's latest version of each
kind of workbook first with its as-of and whether it is final, older versions greyed."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from point3_pipeline import cli
from point3_pipeline.periods import Period
from point3_pipeline.reports import render_reconciliation_report, render_tax_report, write_index
from point3_pipeline.reports.index import PERIOD_KIND_KO, period_of
from tests.report_fixtures import Books, kst

NOW = kst(2026, 1, 5, 9)


@pytest.mark.parametrize(("first", "days", "label"), [
    (dt.date(2025, 11, 1), 30, "2025-11"),
    (dt.date(2025, 2, 1), 28, "2025-02"),
    (dt.date(2024, 2, 1), 29, "2024-02"),
    (dt.date(2025, 7, 1), 31, "2025-07"),
    (dt.date(2025, 7, 1), 92, "2025-Q3"),
    (dt.date(2025, 1, 1), 90, "2025-Q1"),
    (dt.date(2024, 1, 1), 91, "2024-Q1"),
    (dt.date(2025, 7, 1), 184, "2025-H2"),
    (dt.date(2025, 1, 1), 181, "2025-H1"),
    (dt.date(2024, 1, 1), 366, "2024"),
    (dt.date(2025, 1, 1), 365, "2025"),
])  # fmt: skip
def test_a_recorded_version_names_its_period(first, days, label):
    assert period_of(first, days) == Period.parse(label)


@pytest.mark.parametrize(("first", "days"), [(dt.date(2025, 7, 2), 30), (dt.date(2025, 8, 1), 92), (dt.date(2025, 7, 1), 60)])
def test_no_period_of_that_shape_is_an_error(first, days):
    with pytest.raises(ValueError, match="no report period"):
        period_of(first, days)


def _tables(text: str) -> dict[str, str]:
    """Period label -> the HTML of its table."""
    parts = re.split(r"<h3>([^ <]+) · ", text)[1:]
    return dict(zip(parts[::2], parts[1::2]))


def test_the_index_lists_every_period_kind_latest_first(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.payment("n1", kst(2025, 11, 2, 10))
    books.payment("n2", kst(2025, 11, 3, 10), total=5_000, vat=0, supply=5_000)  # exempt
    books.payment("d1", kst(2025, 12, 9, 10))
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 12, 31))  # the year's first nine months are not
    wh = books.refresh()
    out = tmp_path / "reports"
    for label in ("2025-11", "2025-Q4", "2025-H2", "2025"):
        render_tax_report(wh, label, out, now=NOW)
    render_reconciliation_report(wh, "2025-11", out, now=NOW)
    books.payment("late", kst(2025, 11, 4, 10), seen_at=kst(2025, 12, 5))  # found late: a new version
    wh = books.refresh()
    render_tax_report(wh, "2025-11", out, now=NOW)  # v2

    text = write_index(wh, out).read_text(encoding="utf-8")
    sections = [PERIOD_KIND_KO[k] for k in ("month", "quarter", "half", "year")]
    assert [text.index(f"<h2>{s}</h2>") for s in sections] == sorted(text.index(f"<h2>{s}</h2>") for s in sections)
    tables = _tables(text)
    assert list(tables) == ["2025-11", "2025-Q4", "2025-H2", "2025"]
    november = tables["2025-11"].split("<tr")[2:]
    assert [("v2" in r, 'class="old"' in r) for r in november if "월간 부가세" in r] == [(True, False), (False, True)]
    assert any("정산 대사" in r and 'class="old"' not in r for r in november)
    assert "30/30</td><td>최종본</td>" in tables["2025-11"]
    assert "92/92</td><td>최종본</td>" in tables["2025-Q4"]
    assert "92/184" in tables["2025-H2"] and "최종본 아님" in tables["2025-H2"]
    assert "92/365" in tables["2025"] and "최종본 아님" in tables["2025"]
    assert "2025-11-" in tables["2025-11"]  # its as-of: the complete syncs of November's days
    assert ">공급가액<" not in text  # point3's taxFreeAmount is not shown as 공급가액


def test_report_index_command_writes_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POINT3_WAREHOUSE", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("POINT3_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.delenv("POINT3_BUSINESSES", raising=False)
    assert cli.main(["report", "index"]) == 0
    path = tmp_path / "reports" / "index.html"
    assert capsys.readouterr().out.strip() == str(path)
    assert "아직 만든 보고서가 없습니다" in path.read_text(encoding="utf-8")
