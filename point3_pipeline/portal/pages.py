"""The portal's pages, in Korean. Every text that comes from data (merchant and business names,
file names, user names) goes through `e` (html.escape) and every URL part through `q`; the
pages have no script and no inline style (the Content-Security-Policy allows neither)."""

from __future__ import annotations

import datetime as dt
import html
from urllib.parse import quote

from point3_pipeline.businesses import format_registration_number
from point3_pipeline.merchants import Merchant
from point3_pipeline.models import KST
from point3_pipeline.periods import KINDS, Period
from point3_pipeline.portal.library import Shelf, Version
from point3_pipeline.reports.index import KIND_KO, Listed
from point3_pipeline.reports.versions import UNCLASSIFIED_COUNT

PERIOD_KIND_KO = {"month": "월", "quarter": "분기", "half": "반기", "year": "연"}
WORKBOOK_KINDS = ("tax", "vat", "reconciliation")


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def q(value: str) -> str:
    return quote(value, safe="")


def file_url(merchant_id: str, file_name: str) -> str:
    return f"/m/{q(merchant_id)}/files/{quote(file_name, safe='/')}"


def versions_url(merchant_id: str, kind: str, period: Period) -> str:
    return f"/m/{q(merchant_id)}/versions/{q(kind)}/{q(period.label)}"


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(KST).strftime("%Y-%m-%d %H:%M") if value else "없음"


def layout(title: str, body: list[str], *, user_name: str | None = None, csrf: str | None = None) -> str:
    top = ['<header><a href="/">point3 보고서</a>']
    if user_name is not None:
        top.append(
            f'<span>{e(user_name)}<form method="post" action="/logout">'
            f'<input type="hidden" name="csrf_token" value="{e(csrf)}"><button type="submit">로그아웃</button>'
            "</form></span>"
        )
    top.append("</header>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="ko"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<title>{e(title)}</title><link rel="stylesheet" href="/static/portal.css"></head><body>',
        *top, "<main>", *body, "</main></body></html>",
    ])  # fmt: skip


def login_page(csrf: str, message: str | None = None) -> str:
    body = [
        "<h1>로그인</h1>",
        f'<p class="error">{e(message)}</p>' if message else "",
        '<form class="login" method="post" action="/login">',
        f'<input type="hidden" name="csrf_token" value="{e(csrf)}">',
        '<label for="username">아이디</label><input type="text" id="username" name="username" autocomplete="username" required>',
        '<label for="password">비밀번호</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password" required>',
        '<button type="submit">로그인</button></form>',
    ]
    return layout("point3 보고서 로그인", body)


def home_page(user_name: str, csrf: str, merchants: list[Merchant]) -> str:
    body = ["<h1>가맹점</h1>"]
    if not merchants:
        body.append('<p class="note">볼 수 있는 가맹점이 없습니다. 운영자에게 문의하세요.</p>')
    else:
        body.append("<ul>")
        body += [f'<li><a href="/m/{q(m.id)}/">{e(m.name)}</a> <span class="muted">({e(m.id)})</span></li>' for m in merchants]
        body.append("</ul>")
    return layout("point3 보고서", body, user_name=user_name, csrf=csrf)


def _state(version: Version) -> str:
    item = version.listed
    if item.is_final:
        return "최종본"
    return f'<span class="warn">최종본 아님</span>{"".join(f"<br>{e(why)}" for why in not_final_reasons(item))}'


def not_final_reasons(item: Listed) -> list[str]:
    """Why a version is not final, as versions.py decides it: days without a complete sync,
    and (tax and VAT workbooks) payments no one has classified."""
    reasons = []
    if item.days_synced < item.days_in_period:
        reasons.append(f"동기화 안 된 날 {item.days_in_period - item.days_synced}일")
    if item.totals.get(UNCLASSIFIED_COUNT, 0) > 0:
        reasons.append(f"미분류 결제 {item.totals[UNCLASSIFIED_COUNT]:,}건")
    return reasons


def _version_cells(merchant_id: str, version: Version, exists: bool) -> str:
    item = version.listed
    download = (f'<a class="download" href="{e(file_url(merchant_id, item.file_name))}">내려받기</a>' if exists
                else '<span class="muted">파일 없음</span>')  # fmt: skip
    return (
        f"<td>v{item.version}</td><td>{e(_time(item.as_of))}</td><td>{item.days_synced}/{item.days_in_period}</td>"
        f"<td>{_state(version)}</td><td>{e(version.change_summary)}</td><td>{download}</td>"
    )


_HEAD = "<th>버전</th><th>데이터 기준 (KST)</th><th>동기화된 날</th><th>상태</th><th>이전 버전 대비 변경</th><th>파일</th>"


def _period_section(merchant_id: str, period: Period, latest: list[Version], existing: set[str]) -> list[str]:
    # ids (p-2025-11, p-2025-11-tax) let a browser test find a period's workbook of a kind
    rows = [f"<h3>{e(period.label_ko)} <span class=\"muted\">({e(period.label)})</span></h3>",
            f'<table id="p-{e(period.label)}"><tr><th>종류</th>{_HEAD}<th>이전 버전</th></tr>']  # fmt: skip
    for version in sorted(latest, key=lambda v: WORKBOOK_KINDS.index(v.listed.kind) if v.listed.kind in WORKBOOK_KINDS else 9):
        kind = version.listed.kind
        history = f'<a href="{e(versions_url(merchant_id, kind, period))}">모든 버전 ({version.listed.version})</a>'
        rows.append(f'<tr id="p-{e(period.label)}-{e(kind)}"><td>{e(KIND_KO.get(kind, kind))}</td>'
                    f"{_version_cells(merchant_id, version, version.file_name in existing)}<td>{history}</td></tr>")  # fmt: skip
    rows.append("</table>")
    return rows


def _businesses(shelf: Shelf) -> list[str]:
    if not shelf.businesses:
        return []
    rows = ["<h2>사업장</h2>", "<table><tr><th>상호</th><th>사업자등록번호</th></tr>"]
    rows += [f"<tr><td>{e(b.name)}</td><td>{e(registration_text(b.registration_number))}</td></tr>" for b in shelf.businesses]
    rows.append("</table>")
    return rows


def _who(shelf: Shelf, who: str) -> str:
    business = shelf.business_named_by(who)
    if business is None:
        return "미등록 사업장" if who.startswith("undeclared-") else who
    return f"{business.name} ({registration_text(business.registration_number)})"


def registration_text(number: str | None) -> str:
    """As the number is printed (123-45-67890); kept as stored when it is not ten digits."""
    if not number:
        return "미등록"
    return format_registration_number(number) if len(number) == 10 and number.isdigit() else number


def _filing(merchant_id: str, shelf: Shelf, filing: dict[str, list[tuple[str, str]]]) -> list[str]:
    if not filing:
        return ["<h2>신고용 CSV</h2>", '<p class="muted">내보낸 신고용 CSV가 없습니다 (point3 export filing).</p>']
    rows = ["<h2>신고용 CSV</h2>", "<table><tr><th>기간</th><th>사업자</th><th>파일</th></tr>"]
    for label, files in filing.items():
        for name, who in files:
            shown = _who(shelf, who)
            rows.append(f'<tr><td>{e(label)}</td><td>{e(shown)}</td>'
                        f'<td><a href="{e(file_url(merchant_id, name))}">{e(name.rsplit("/", 1)[-1])}</a></td></tr>')  # fmt: skip
    rows.append("</table>")
    return rows


def merchant_page(user_name: str, csrf: str, merchant: Merchant, shelf: Shelf,
                  filing: dict[str, list[tuple[str, str]]], existing: set[str]) -> str:  # fmt: skip
    """The merchant's latest workbooks per period kind and period, its businesses and its CSVs."""
    body = [f"<h1>{e(merchant.name)} <span class=\"muted\">({e(merchant.id)})</span></h1>"]
    if shelf.problem:
        body.append(f'<p class="note">{e(shelf.problem)}</p>')
    elif not shelf.versions:
        body.append('<p class="note">아직 만든 보고서가 없습니다.</p>')
    by_period: dict[Period, list[Version]] = {}
    for version in shelf.latest():
        by_period.setdefault(version.listed.period, []).append(version)
    for kind in KINDS:
        periods = sorted((p for p in by_period if p.kind == kind), reverse=True)
        if periods:
            body.append(f"<h2>{e(PERIOD_KIND_KO[kind])}</h2>")
        for period in periods:
            body += _period_section(merchant.id, period, by_period[period], existing)
    body += _businesses(shelf) + _filing(merchant.id, shelf, filing)
    return layout(f"{merchant.name} 보고서", body, user_name=user_name, csrf=csrf)


def versions_page(user_name: str, csrf: str, merchant: Merchant, kind: str, period: Period,
                  versions: list[Version], existing: set[str]) -> str:  # fmt: skip
    title = f"{KIND_KO.get(kind, kind)} · {period.label_ko}"
    body = [
        f'<p><a href="/m/{q(merchant.id)}/">{e(merchant.name)}</a></p>',
        f"<h1>{e(title)} <span class=\"muted\">({e(period.label)})</span></h1>",
        f"<table><tr>{_HEAD}<th>생성 (KST)</th></tr>",
    ]
    body += [f"<tr>{_version_cells(merchant.id, v, v.file_name in existing)}<td>{e(_time(v.listed.created_at))}</td></tr>"
             for v in versions]  # fmt: skip
    body.append("</table>")
    return layout(f"{merchant.name} {title}", body, user_name=user_name, csrf=csrf)


def message_page(title: str, text: str, *, user_name: str | None = None, csrf: str | None = None) -> str:
    return layout(title, [f"<h1>{e(title)}</h1>", f"<p>{e(text)}</p>"], user_name=user_name, csrf=csrf)
