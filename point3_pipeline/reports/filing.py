"""The figures of a tax or VAT workbook: formulas over its detail sheet, each with its value.

Every figure of the summary, business and daily sheets is a SUMIFS / COUNTIFS over the detail
sheet (신고내역: one row per filing movement, a cancellation's amounts negative), and its cached
value is the same sum taken in SQL over the same movements (sql/reports/filing_groups.sql,
filing_days.sql). The criteria are keys the pipeline makes (B01, CARD, OTHER-…, taxable, a, 매출),
never API text: SUMIFS reads * ? ~ and a leading = < > in a criterion as patterns.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

import duckdb
from openpyxl.utils import get_column_letter

from point3_pipeline.periods import Period
from point3_pipeline.reports import data
from point3_pipeline.reports.workbook import COUNT, Column, Figure

DETAIL = "신고내역"
SALE_KO, CANCELLATION_KO = "매출", "취소"
MOVEMENT_KO = {"sale": SALE_KO, "cancellation": CANCELLATION_KO}

# The detail sheet's columns; AMOUNTS are its signed money columns, by the name the SQL gives them.
DETAIL_COLUMNS = [
    Column("구분", "movement", width=6),
    Column("귀속일", "filing day", "date", 10.5),
    Column("사업자", "business key", width=8),
    Column("사업자명", "business", width=14),
    Column("결제일", "payment day", "date", 10.5),
    Column("승인 시각 (KST)", "accepted at", "datetime", 19),
    Column("서명", "signature", width=36),
    Column("주문번호", "order id", width=14),
    Column("상품명", "product", width=18),
    Column("결제수단", "method", width=9),
    Column("수단 키", "method key", width=15),
    Column("과세구분", "tax class", width=12),
    Column("구분 코드", "class code", width=15),
    Column("분류 근거", "class from", width=9),
    Column("문화비", "culture", width=7),
    Column("결제금액", "total", "won", 11),
    Column("공급가액", "taxable supply", "won", 11),
    Column("부가세", "VAT", "won", 10),
    Column("면세", "exempt", "won", 11),
    Column("미분류", "unclassified", "won", 11),
    Column("취소 감지 (KST)", "cancel seen at", "datetime", 19),
    Column("취소 하한 (KST)", "canceled after", "datetime", 19),
    Column("비고", "note", width=30),
]
COL = {
    "movement": 0, "filing_date": 1, "sheet_key": 2, "method_key": 10, "tax_class": 12, "culture_key": 14,
    "total_charge": 15, "taxable_supply": 16, "vat": 17, "exempt_amount": 18, "unclassified_amount": 19,
}  # fmt: skip
AMOUNTS = ("total_charge", "taxable_supply", "vat", "exempt_amount", "unclassified_amount")
# How many free rows stand above the detail sheet's header (title, two notes): fixed, so
# the other sheets' formulas can name its ranges before it is written.
DETAIL_ABOVE = 3


@dataclass(frozen=True)
class Business:
    sheet_key: str  # B01, B02, ...: the workbook's key
    business_key: str  # business_id, or undeclared:<name>
    business_id: str | None
    business_name: str | None
    registration_number: str | None
    taxpayer_type: str | None
    sales_taxation: str | None
    is_declared: bool

    @property
    def display_name(self) -> str:
        return self.business_name or "(가맹점명 없음)"

    @property
    def number_text(self) -> str:
        n = self.registration_number
        return f"{n[:3]}-{n[3:5]}-{n[5:]}" if n else "미등록 (사업자 정보 파일에 없음)"


def _letter(index: int) -> str:
    return get_column_letter(index + 1)


@dataclass
class FilingFigures:
    """The period's businesses and summed movements, and the formulas that add them up."""

    period: Period
    businesses: list[Business]
    groups: list[dict]  # filing_groups rows
    days: dict[tuple[dt.date, str], dict]  # (filing_date, movement) -> filing_days row
    movement_count: int
    declared_count: int
    known_methods: list[tuple[str, str]]  # (code, Korean label) of payment_method_types
    tax_classes: list[tuple[str, str]]  # (class, Korean label)
    culture_types: list[tuple[str, str]]  # (code, Korean label), 'unknown' last

    @property
    def detail_first(self) -> int:
        return DETAIL_ABOVE + 2  # after the free rows and the header row

    @property
    def detail_last(self) -> int:
        return self.detail_first + max(self.movement_count, 1) - 1

    def detail_range(self, field: str) -> str:
        letter = _letter(COL[field])
        return f"'{DETAIL}'!${letter}${self.detail_first}:${letter}${self.detail_last}"

    def _criteria(self, criteria: dict[str, str]) -> str:
        return "".join(f',{self.detail_range(k)},"{v}"' for k, v in criteria.items())

    def _matching(self, criteria: dict[str, str]) -> list[dict]:
        return [row for row in self.groups if all(_group_value(row, k) == v for k, v in criteria.items())]

    def amount(self, field: str, style: str = "text", **criteria: str) -> Figure:
        """The net sum of one amount column over the movements matching `criteria`."""
        cached = sum(int(r[field]) for r in self._matching(criteria))
        if criteria:
            formula = f"=SUMIFS({self.detail_range(field)}{self._criteria(criteria)})"
        else:
            formula = f"=SUM({self.detail_range(field)})"
        return Figure(formula, cached, style)

    def amounts(self, fields: tuple[str, ...], style: str = "text", **criteria: str) -> Figure:
        """The sum of several amount columns (e.g. 공급가액 + 부가세, the 공급대가 of the taxable part)."""
        parts = [self.amount(f, style, **criteria) for f in fields]
        formula = "=" + "+".join(p.formula[1:] for p in parts)
        return Figure(formula, sum(p.cached for p in parts), style)

    def count(self, movement: str, style: str = "text", **criteria: str) -> Figure:
        """How many movements (sales or cancellations) match."""
        criteria = {"movement": MOVEMENT_KO[movement], **criteria}
        cached = sum(int(r["movement_count"]) for r in self._matching(criteria))
        return Figure(f"=COUNTIFS({self._criteria(criteria)[1:]})", cached, style, COUNT_FORMAT)

    def day_amount(self, field: str, day: dt.date, cell: str) -> Figure:
        cached = sum(int(self.days[(day, m)][field]) for m in ("sale", "cancellation") if (day, m) in self.days)
        return Figure(f"=SUMIFS({self.detail_range(field)},{self.detail_range('filing_date')},{cell})", cached)

    def day_count(self, movement: str, day: dt.date, cell: str) -> Figure:
        row = self.days.get((day, movement))
        cached = int(row["movement_count"]) if row else 0
        formula = (
            f"=COUNTIFS({self.detail_range('filing_date')},{cell},"
            f'{self.detail_range("movement")},"{MOVEMENT_KO[movement]}")'
        )
        return Figure(formula, cached, "text", COUNT_FORMAT)

    def methods(self, sheet_key: str | None = None) -> list[dict]:
        """The unknown payment methods that have movements (of one business), with their raw codes."""
        seen: dict[str, dict] = {}
        for row in self.groups:
            if row["is_unknown_method"] and (sheet_key is None or row["sheet_key"] == sheet_key):
                seen.setdefault(row["method_key"], row)
        return sorted(seen.values(), key=lambda r: (r["payment_method_type"] is not None, r["method_key"]))

    def total(self, field: str, **criteria: str) -> int:
        return sum(int(r[field]) for r in self._matching(criteria))

    def movements(self, movement: str, **criteria: str) -> int:
        return sum(int(r["movement_count"]) for r in self._matching({"movement": MOVEMENT_KO[movement], **criteria}))


COUNT_FORMAT = '#,##0"건"'


def _group_value(row: dict, key: str) -> str:
    if key == "movement":
        return MOVEMENT_KO[row["movement"]]
    return row[key]


def load(conn: duckdb.DuckDBPyConnection, period: Period) -> FilingFigures:
    """The figures of the period's filing temp tables (data.prepare_filing ran on `conn`)."""
    businesses = [Business(**{k: r[k] for k in Business.__dataclass_fields__}) for r in data.rows_of(conn, "filing_businesses_list")]
    groups = data.rows_of(conn, "filing_groups")
    days = {(r["filing_date"], r["movement"]): r for r in data.rows_of(conn, "filing_days")}
    count = conn.execute("SELECT count(*) FROM filing_movements").fetchone()[0]
    return FilingFigures(
        period, businesses, groups, days, count, data.declared_business_count(conn),
        conn.execute("SELECT payment_method_type, name_ko FROM payment_method_types ORDER BY sort_order").fetchall(),
        conn.execute("SELECT tax_class, name_ko FROM tax_classes ORDER BY sort_order").fetchall(),
        conn.execute("SELECT culture_expense_type, name_ko FROM culture_expense_types ORDER BY sort_order").fetchall(),
    )  # fmt: skip


def totals(figures: FilingFigures) -> dict[str, int]:
    """The key's figures recorded with the version (and shown by the index and Dagster)."""
    by_class: dict[str, int] = defaultdict(int)
    for row in figures.groups:
        by_class[row["tax_class"]] += int(row["movement_count"])
    out = {field: figures.total(field) for field in AMOUNTS}
    out |= {
        "sale_count": figures.movements("sale"),
        "canceled_count": figures.movements("cancellation"),
        "sales_total": figures.total("total_charge", movement=SALE_KO),
        "canceled_total": -figures.total("total_charge", movement=CANCELLATION_KO),
        "impossible_vat_count": by_class["impossible_vat"],
        "mixed_count": by_class["mixed"],
        "unclassified_count": by_class["unclassified"],
        "canceled_date_unknown_count": sum(int(r["date_unknown_count"]) for r in figures.groups),
        "straddling_count": sum(int(r["straddling_count"]) for r in figures.groups),
        "unknown_method_count": sum(int(r["movement_count"]) for r in figures.groups if r["is_unknown_method"]),
        "business_count": len(figures.businesses),
    }
    return out
