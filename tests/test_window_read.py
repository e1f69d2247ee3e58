"""The window walk as a pure object: fed pages by hand, no client, no sandbox."""

from __future__ import annotations

import datetime as dt

import pytest

from point3_pipeline.client import Page, RejectedRecord
from point3_pipeline.limits import Limits
from point3_pipeline.models import parse_order
from point3_pipeline.sync.window import ACCEPT_TOLERANCE_DAYS, WindowWalk

DAY = dt.date(2026, 3, 10)
OK = {"isCanceled": False, "totalCharge": 1_100, "taxFreeAmount": 1_000, "vat": 100}


def order(signature: str, **fields):
    return parse_order({"signature": signature * 32 if len(signature) == 1 else signature, **OK, **fields})


def page(number: int, count: int, *orders, rejected=()):
    return Page(page=number, count=count, orders=list(orders), rejected=list(rejected),
                record_count=len(orders) + len(rejected))


def walk_all(walk: WindowWalk, walks: list[list[Page]]) -> str | None:
    """Feed the walks the way read_window does; the reason the read is not final."""
    for pages in walks:
        if not walk.wants_walk:
            break
        walk.start_walk()
        for p in pages:
            if not walk.add_page(p):
                break
        walk.end_walk()
    return walk.finish()


def test_a_clean_walk_is_final_after_one_walk():
    walk = WindowWalk(DAY, Limits())
    reason = walk_all(walk, [[page(1, 2, order("A"), order("B")), page(2, 2, order("C"))]] * 3)
    assert (reason, walk.walks, sorted(walk.orders)) == (None, 1, ["A" * 32, "B" * 32, "C" * 32])


def test_a_shifted_walk_is_walked_again_until_nothing_is_new():
    walk = WindowWalk(DAY, Limits())
    shifted = [page(1, 2, order("A"), order("B")), page(2, 2, order("B"), order("C")), page(3, 2)]
    clean = [page(1, 2, order("A"), order("B")), page(2, 2, order("C"))]
    assert walk_all(walk, [shifted, clean, clean]) is None
    assert walk.walks == 2 and not walk.quarantined


def test_copies_that_conflict_on_every_walk_are_quarantined_and_none_is_stored():
    cheap, dear = order("S", totalCharge=1_000), order("S", totalCharge=9_999_999)
    walk = WindowWalk(DAY, Limits(), max_walks=3)
    reason = walk_all(walk, [[page(1, 3, order("A"), cheap, dear)]] * 3)
    assert walk.walks == 3
    assert "conflicting copies" in reason and "S" * 32 in reason
    assert list(walk.orders) == ["A" * 32], "neither copy may become the payment's content"
    assert sorted(q.raw_text for q in walk.quarantined.values()) == sorted([cheap.raw_json, dear.raw_json])
    for q in walk.quarantined.values():
        assert q.signature == "S" * 32 and "conflicting copies" in q.reason and "S" * 32 in q.reason
        assert q.copies == 1


def test_copies_that_conflicted_once_then_agree_are_resolved_by_the_next_walk():
    cheap, dear = order("S", totalCharge=1_000), order("S", totalCharge=9_999_999)
    walk = WindowWalk(DAY, Limits())
    reason = walk_all(walk, [[page(1, 3, cheap, dear)], [page(1, 3, dear)], [page(1, 3, dear)]])
    assert reason is None and walk.walks == 2 and not walk.quarantined
    assert walk.orders["S" * 32].total_charge == 9_999_999


def test_a_walk_that_cycles_stops_at_once_and_keeps_what_it_read():
    a, b = [order("A"), order("B")], [order("C"), order("D")]
    walk = WindowWalk(DAY, Limits())
    cycling = [page(1, 2, *a), page(2, 2, *b), page(3, 2, *a), page(4, 2, *b)]
    reason = walk_all(walk, [cycling] * 3)
    assert "cycle" in reason and "page 3" in reason
    assert (walk.walks, walk.pages) == (1, 2)
    assert len(walk.orders) == 4


@pytest.mark.parametrize(
    ("limits", "bound"),
    [(Limits(max_pages_per_window=5), "max_pages_per_window"), (Limits(max_records_per_window=7), "max_records_per_window")],
)
def test_a_window_at_a_bound_stops_is_not_final_and_keeps_its_records(limits, bound):
    endless = (page(n, 2, order(f"E{n:031d}"), order(f"F{n:031d}")) for n in range(1, 10_000))
    walk = WindowWalk(DAY, limits)
    reason = walk_all(walk, [endless])
    assert bound in reason
    assert walk.pages <= 5 and len(walk.orders) == 2 * walk.pages
    assert not walk.wants_walk


def test_a_last_page_exactly_at_the_bound_is_not_a_bound_hit():
    walk = WindowWalk(DAY, Limits(max_pages_per_window=2))
    assert walk_all(walk, [[page(1, 2, order("A"), order("B")), page(2, 2, order("C"))]]) is None


@pytest.mark.parametrize(
    ("accepted", "kept"),
    [
        ("20260310120000", True),
        ("20260311000500", True),  # accepted just after its window ended (filtered on request time)
        ("20260309235959", True),  # the midnight overlap, one day back
        ("20260312000000", False),  # beyond the day after
        ("20260208120000", False),  # a month before
        ("29991231235959", False),
    ],
)
def test_a_record_accepted_far_from_its_window_is_quarantined(accepted, kept):
    assert ACCEPT_TOLERANCE_DAYS == 1
    walk = WindowWalk(DAY, Limits())
    walk_all(walk, [[page(1, 2, order("A", timeStampOnAccept=accepted))]])
    assert ("A" * 32 in walk.orders) is kept
    if not kept:
        [q] = walk.quarantined.values()
        assert accepted in q.reason and "outside its window 2026-03-10" in q.reason and q.signature == "A" * 32


def test_a_bad_record_repeated_by_a_shift_is_one_copy_once_a_walk_confirms():
    bad = RejectedRecord.from_raw({"signature": "C" * 32, **OK, "vat": "100"}, "vat is not an integer amount")
    first = [page(1, 2, order("A"), rejected=[bad]), page(2, 2, order("B"), rejected=[bad]), page(3, 2)]
    second = [page(1, 2, order("A"), order("B")), page(2, 2, rejected=[bad])]
    walk = WindowWalk(DAY, Limits())
    assert walk_all(walk, [first, second]) is None
    assert [q.copies for q in walk.quarantined.values()] == [1]
