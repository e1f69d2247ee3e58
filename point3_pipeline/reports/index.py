"""reports_dir/index.html: every workbook by period kind (month, quarter, half-year, year), period
and kind of workbook, for the accountant's browser. Each period's latest version of each kind
comes first, with its as-of and whether it is final; older versions follow, greyed."""

from __future__ import annotations

import datetime as dt
import html
import os
from dataclasses import dataclass
from pathlib import Path

from point3_pipeline.models import KST
from point3_pipeline.periods import HALF, KINDS, MONTH, QUARTER, YEAR, Period
from point3_pipeline.reports.versions import all_versions, period_of
from point3_pipeline.warehouse import Warehouse

KIND_KO = {"tax": "월간 부가세", "vat": "부가세 신고 자료", "reconciliation": "정산 대사"}  # as the workbooks title themselves
PERIOD_KIND_KO = {MONTH: "월별", QUARTER: "분기 (예정·법인 확정)", HALF: "반기 (확정)", YEAR: "연간 (간이과세자·사업장현황신고)"}
# (header, the totals keys that can hold it, first found): the split's figures, never point3's
# taxFreeAmount as 공급가액.
TOTAL_COLUMNS = (
    ("결제 건수", ("payment_count",)),
    ("결제금액", ("total_charge",)),
    ("과세 공급가액", ("net_taxable_supply", "taxable_supply")),
    ("부가세", ("net_vat", "vat")),
    ("면세", ("net_exempt_amount", "exempt_amount")),
    ("미분류", ("net_unclassified_amount", "unclassified_amount")),
)
_STYLE = """
body { font-family: "Malgun Gothic", "Apple SD Gothic Neo", sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 4px 10px; }
th { background: #dde4ee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #c00000; font-weight: bold; }
.old { color: #777; }
"""


@dataclass(frozen=True)
class Listed:
    """One recorded workbook version, as the index shows it."""

    kind: str
    period: Period
    version: int
    file_name: str
    created_at: dt.datetime
    as_of: dt.datetime | None
    days_synced: int
    days_in_period: int
    is_final: bool
    changes: int
    totals: dict[str, int]


def listed_versions(rows: list[tuple]) -> list[Listed]:
    """versions.all_versions' rows as Listed, newest version first within a period and kind."""
    return [
        Listed(kind, period_of(first, days), version, name, created, as_of, synced, days, final, changes, totals)
        for kind, first, version, name, created, as_of, _newest, synced, days, final, changes, totals in rows
    ]


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(KST).strftime("%Y-%m-%d %H:%M") if value else "없음"


def _won(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _total(totals: dict[str, int], keys: tuple[str, ...]) -> int | None:
    return next((totals[k] for k in keys if k in totals), None)


def _row(item: Listed, is_latest: bool) -> str:
    e = html.escape
    state = "최종본" if item.is_final else '<span class="warn">최종본 아님</span>'
    css = "" if is_latest else ' class="old"'
    figures = "".join(f'<td class="n">{e(_won(_total(item.totals, keys)))}</td>' for _, keys in TOTAL_COLUMNS)
    return (
        f"<tr{css}><td>{e(KIND_KO.get(item.kind, item.kind))}</td>"
        f'<td><a href="{e(Path(item.file_name).as_posix(), quote=True)}">v{item.version}</a></td>'
        f"<td>{e(_time(item.as_of))}</td><td>{e(_time(item.created_at))}</td>"
        f"<td>{item.days_synced}/{item.days_in_period}</td><td>{state}</td>{figures}"
        f'<td class="n">{item.changes if item.version > 1 else ""}</td></tr>'
    )


def _period_table(items: list[Listed]) -> list[str]:
    period = items[0].period
    out = [
        f"<h3>{html.escape(period.label)} · {html.escape(period.label_ko)}</h3>",
        "<table><tr><th>종류</th><th>버전</th><th>데이터 기준 (KST)</th><th>생성 (KST)</th><th>동기화된 날</th>"
        "<th>상태</th>" + "".join(f"<th>{header}</th>" for header, _ in TOTAL_COLUMNS) + "<th>변경</th></tr>",
    ]
    ordered = sorted(items, key=lambda i: (i.kind, -i.version))
    out += [_row(item, is_latest=i == 0 or ordered[i - 1].kind != item.kind) for i, item in enumerate(ordered)]
    out.append("</table>")
    return out


def index_html(items: list[Listed], generated_at: dt.datetime) -> str:
    """The page: a section per period kind, a table per period (newest first)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="ko"><head><meta charset="utf-8"><title>point3 보고서</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>point3 보고서</h1>",
        f"<p>생성 {html.escape(_time(generated_at))} KST · 기간마다 종류별 최신 버전이 먼저, 이전 버전은 회색입니다.</p>",
    ]
    if not items:
        out.append("<p>아직 만든 보고서가 없습니다.</p>")
    for kind in KINDS:
        periods = sorted({i.period for i in items if i.period.kind == kind}, reverse=True)
        if periods:
            out.append(f"<h2>{html.escape(PERIOD_KIND_KO[kind])}</h2>")
        for period in periods:
            out += _period_table([i for i in items if i.period == period])
    out.append("</body></html>")
    return "\n".join(out)


def write_index(warehouse: Warehouse, reports_dir: Path) -> Path:
    """Write (atomically) the index of every recorded workbook version; returns its path."""
    reports_dir = Path(reports_dir)
    with warehouse.connect() as conn:
        items = listed_versions(all_versions(conn))
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / "index.html"
    tmp = path.with_name(f".index.html.tmp-{os.getpid()}")
    tmp.write_text(index_html(items, dt.datetime.now(KST)), encoding="utf-8")
    os.replace(tmp, path)
    return path
