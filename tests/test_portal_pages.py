"""The portal's pages as pure functions: why a version is not final."""

import datetime as dt

import pytest

from point3_pipeline.models import KST
from point3_pipeline.periods import Period
from point3_pipeline.portal.pages import not_final_reasons, registration_text
from point3_pipeline.reports.index import Listed


def listed(days_synced: int, totals: dict[str, int], is_final: bool = False) -> Listed:
    created = dt.datetime(2026, 12, 1, 9, tzinfo=KST)
    return Listed("tax", Period.parse("2026-11"), 1, "2026-11/x.xlsx", created, created, days_synced, 30,
                  is_final, 0, totals)  # fmt: skip


@pytest.mark.parametrize(
    ("days_synced", "totals", "expected"),
    [
        (30, {"unclassified_count": 0}, []),
        (28, {}, ["동기화 안 된 날 2일"]),
        (30, {"unclassified_count": 1234}, ["미분류 결제 1,234건"]),
        (0, {"unclassified_count": 3}, ["동기화 안 된 날 30일", "미분류 결제 3건"]),
    ],
)
def test_not_final_reasons_name_the_missing_days_and_the_unclassified_payments(days_synced, totals, expected):
    assert not_final_reasons(listed(days_synced, totals)) == expected


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("1018112341", "101-81-12341"), (None, "미등록"), ("", "미등록"), ("12-34", "12-34"), ("101811234x", "101811234x")],
)
def test_registration_numbers_are_shown_as_printed(stored, shown):
    assert registration_text(stored) == shown
