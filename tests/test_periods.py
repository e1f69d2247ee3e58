import datetime as dt

import pytest

from point3_pipeline.periods import HALF, MONTH, QUARTER, YEAR, Period


@pytest.mark.parametrize(
    ("text", "kind", "first", "last", "label_ko"),
    [
        ("2026-11", MONTH, dt.date(2026, 11, 1), dt.date(2026, 11, 30), "2026년 11월"),
        ("2024-02", MONTH, dt.date(2024, 2, 1), dt.date(2024, 2, 29), "2024년 2월"),
        ("2026-Q1", QUARTER, dt.date(2026, 1, 1), dt.date(2026, 3, 31), "2026년 1분기 (제1기 예정)"),
        ("2026-Q3", QUARTER, dt.date(2026, 7, 1), dt.date(2026, 9, 30), "2026년 3분기 (제2기 예정)"),
        ("2026-Q4", QUARTER, dt.date(2026, 10, 1), dt.date(2026, 12, 31), "2026년 4분기 (제2기 확정 (분기))"),
        ("2026-H1", HALF, dt.date(2026, 1, 1), dt.date(2026, 6, 30), "2026년 상반기 (제1기 확정)"),
        ("2026-H2", HALF, dt.date(2026, 7, 1), dt.date(2026, 12, 31), "2026년 하반기 (제2기 확정)"),
        ("2026", YEAR, dt.date(2026, 1, 1), dt.date(2026, 12, 31), "2026년 (연간)"),
    ],
)
def test_a_label_parses_and_prints_back(text, kind, first, last, label_ko):
    period = Period.parse(text)
    assert (period.kind, period.first, period.last, period.label, period.label_ko) == (kind, first, last, text, label_ko)
    assert len(period.days) == (last - first).days + 1
    assert period.end - period.start == dt.timedelta(days=len(period.days))
    assert Period.containing(kind, last) == period


@pytest.mark.parametrize("text", ["", "2026-13", "2026-00", "2026-Q5", "2026-H3", "26-11", "1999-12", "2026-11-01", "2026/11"])
def test_a_bad_label_is_one_sentence(text):
    with pytest.raises(ValueError, match="got"):
        Period.parse(text)


def test_a_quarter_lists_its_months():
    assert [m.label for m in Period.parse("2026-Q4").months] == ["2026-10", "2026-11", "2026-12"]
    assert len(Period.parse("2026").months) == 12
