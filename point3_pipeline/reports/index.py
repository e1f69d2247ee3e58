"""reports_dir/index.html: every workbook by period and kind, for the accountant's browser."""

from __future__ import annotations

import datetime as dt
import html
import os
from pathlib import Path

from point3_pipeline.models import KST
from point3_pipeline.reports.versions import all_versions, period_of
from point3_pipeline.warehouse import Warehouse

KIND_KO = {"tax": "월간 부가세", "vat": "부가세 신고 자료", "reconciliation": "정산 대사"}
# The figures shown per kind: the filing view's for the tax workbooks, the payments' otherwise.
FIGURES = {
    "filing": (("과세 공급가액", "taxable_supply"), ("부가세", "vat"), ("면세", "exempt_amount"),
               ("미분류", "unclassified_amount"), ("결제금액 순액", "total_charge")),
    "payments": (("결제 건수", "payment_count"), ("결제금액", "total_charge"), ("부가세", "vat"),
                 ("취소 금액", "canceled_total"), ("순 결제금액", "net_total")),
}  # fmt: skip
_STYLE = """
body { font-family: "Malgun Gothic", "Apple SD Gothic Neo", sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 4px 10px; }
th { background: #dde4ee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #c00000; font-weight: bold; }
.old { color: #777; }
"""


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(KST).strftime("%Y-%m-%d %H:%M") if value else "없음"


def _won(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def write_index(warehouse: Warehouse, reports_dir: Path) -> Path:
    """Write (atomically) the index of every recorded workbook version; returns its path."""
    reports_dir = Path(reports_dir)
    with warehouse.connect() as conn:
        versions = all_versions(conn)
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="ko"><head><meta charset="utf-8"><title>point3 보고서</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>point3 보고서</h1>",
        f"<p>생성 {e(_time(dt.datetime.now(KST)))} KST · 각 기간의 최신 버전이 맨 위에 있습니다.</p>",
    ]
    if not versions:
        out.append("<p>아직 만든 보고서가 없습니다.</p>")
    labelled = [(period_of(v[1], v[8]).label, v) for v in versions]
    periods = list(dict.fromkeys(label for label, _ in labelled))  # newest period first, as all_versions orders them
    for period in periods:
        out.append(f"<h2>{e(period)}</h2>")
        latest: set[str] = set()
        shown: str | None = None
        for kind, _, version, name, created, as_of, _newest, synced, days, final, changes, totals in (
            v for label, v in labelled if label == period
        ):
            figures = FIGURES["filing" if kind in ("tax", "vat") else "payments"]
            if shown != kind:
                if shown is not None:
                    out.append("</table>")
                out.append(
                    "<table><tr><th>종류</th><th>버전</th><th>데이터 기준 (KST)</th><th>생성 (KST)</th><th>동기화된 날</th>"
                    + "".join(f"<th>{e(label)}</th>" for label, _ in figures) + "<th>변경</th></tr>"
                )
                shown = kind
            href = Path(name).as_posix()
            css = "" if kind not in latest else ' class="old"'
            latest.add(kind)
            coverage = f"{synced}/{days}" + ("" if final else ' <span class="warn">최종본 아님</span>')
            out.append(
                f"<tr{css}><td>{e(KIND_KO.get(kind, kind))}</td>"
                f'<td><a href="{e(href, quote=True)}">v{version}</a></td>'
                f"<td>{e(_time(as_of))}</td><td>{e(_time(created))}</td><td>{coverage}</td>"
                + "".join(
                    f'<td class="n">{e(_won(totals.get(k)))}</td>'
                    for _, k in figures
                )
                + f'<td class="n">{changes if version > 1 else ""}</td></tr>'
            )
        out.append("</table>")
    out.append("</body></html>")
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / "index.html"
    tmp = path.with_name(f".index.html.tmp-{os.getpid()}")
    tmp.write_text("\n".join(out), encoding="utf-8")
    os.replace(tmp, path)
    return path
