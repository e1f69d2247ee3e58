"""Reporting periods: a month, a quarter (VAT 예정), a half-year (VAT 확정) or a year, in KST days.

One type for every report, the CLI, report versions, the index and Dagster: the monthly
workbook is the month case. Labels are what people type and what files are named by:
`2026-11`, `2026-Q3`, `2026-H2`, `2026`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from point3_pipeline.models import KST

MONTH, QUARTER, HALF, YEAR = "month", "quarter", "half", "year"
KINDS = (MONTH, QUARTER, HALF, YEAR)
MONTHS_IN = {MONTH: 1, QUARTER: 3, HALF: 6, YEAR: 12}
# The first period a report can be about: point3 has no payments before 2000 (config's bound).
FIRST_YEAR = 2000

_LABEL = re.compile(r"^(\d{4})(?:-(\d{2})|-Q([1-4])|-H([12]))?$")
EXPECTED = "YYYY-MM, YYYY-Qn, YYYY-Hn or YYYY (e.g. 2026-11, 2026-Q3, 2026-H2, 2026)"


@dataclass(frozen=True, order=True)
class Period:
    first: dt.date
    last: dt.date  # inclusive
    kind: str

    @classmethod
    def parse(cls, text: str) -> Period:
        """A period from its label; ValueError with one sentence otherwise."""
        match = _LABEL.match((text or "").strip())
        if not match:
            raise ValueError(f"a period must be {EXPECTED}, got {text!r}")
        year = int(match.group(1))
        if year < FIRST_YEAR:
            raise ValueError(f"a period must start in {FIRST_YEAR} or later (point3 has no earlier payments), got {text!r}")
        month, quarter, half = match.group(2), match.group(3), match.group(4)
        if month is not None:
            if not 1 <= int(month) <= 12:
                raise ValueError(f"a month must be YYYY-MM with MM from 01 to 12, got {text!r}")
            return cls.of(MONTH, year, int(month))
        if quarter is not None:
            return cls.of(QUARTER, year, 3 * int(quarter) - 2)
        if half is not None:
            return cls.of(HALF, year, 6 * int(half) - 5)
        return cls.of(YEAR, year, 1)

    @classmethod
    def of(cls, kind: str, year: int, first_month: int) -> Period:
        """The period of `kind` starting on the 1st of `first_month` of `year`."""
        first = dt.date(year, first_month, 1)
        after = _add_months(first, MONTHS_IN[kind])
        return cls(first, after - dt.timedelta(days=1), kind)

    @classmethod
    def containing(cls, kind: str, day: dt.date) -> Period:
        size = MONTHS_IN[kind]
        return cls.of(kind, day.year, (day.month - 1) // size * size + 1)

    @property
    def label(self) -> str:
        if self.kind == MONTH:
            return f"{self.first:%Y-%m}"
        if self.kind == QUARTER:
            return f"{self.first.year}-Q{(self.first.month + 2) // 3}"
        if self.kind == HALF:
            return f"{self.first.year}-H{(self.first.month + 5) // 6}"
        return f"{self.first.year}"

    @property
    def label_ko(self) -> str:
        """How an accountant names it: 2026년 11월, 2026년 3분기 (제2기 예정), 2026년 하반기 (제2기 확정), 2026년."""
        year = self.first.year
        if self.kind == MONTH:
            return f"{year}년 {self.first.month}월"
        if self.kind == QUARTER:
            quarter = (self.first.month + 2) // 3
            term = "제1기" if quarter <= 2 else "제2기"
            stage = "예정" if quarter in (1, 3) else "확정 (분기)"
            return f"{year}년 {quarter}분기 ({term} {stage})"
        if self.kind == HALF:
            return f"{year}년 상반기 (제1기 확정)" if self.first.month == 1 else f"{year}년 하반기 (제2기 확정)"
        return f"{year}년 (연간)"

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first, dt.time(), KST)

    @property
    def end(self) -> dt.datetime:
        """The first instant after the period (exclusive end)."""
        return dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(), KST)

    @property
    def months(self) -> list[Period]:
        return [Period.of(MONTH, m.year, m.month) for m in (_add_months(self.first, n) for n in range(MONTHS_IN[self.kind]))]

    def contains(self, day: dt.date) -> bool:
        return self.first <= day <= self.last


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)
