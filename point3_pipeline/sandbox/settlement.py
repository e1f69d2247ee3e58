"""The settleable balance, as point3 reports it: refreshed every 30 minutes.

Money in: each completed payment's totalCharge from its completion. Money out: processed
cancellations of completed payments, and a weekly payout every Wednesday 00:00 KST of
everything that had come in by the Monday 00:00 before it. The reported value is the
balance at the start of the current 30-minute slot.
"""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_right
from itertools import accumulate

from point3_pipeline.models import KST
from point3_pipeline.sandbox.store import PaymentStore

REFRESH_SECONDS = 30 * 60
WEEK = 7 * 86400
PAYOUT_WEEKDAY = 2  # Wednesday
PAYOUT_COVERS_UNTIL = 2 * 86400  # the payout covers up to the Monday before it


def slot_start(now: float) -> int:
    # KST has no DST and a whole-hour offset, so epoch slots line up with xx:00 and xx:30.
    return math.floor(now / REFRESH_SECONDS) * REFRESH_SECONDS


class SettlementLedger:
    def __init__(self, origin: dt.date):
        days_to_payout = (PAYOUT_WEEKDAY - origin.weekday()) % 7
        first = dt.datetime(origin.year, origin.month, origin.day, tzinfo=KST) + dt.timedelta(days=days_to_payout)
        self._first_payout = int(first.timestamp())
        self._version = -1
        self._times: list[float] = []
        self._sums: list[int] = [0]

    def _rebuild(self, store: PaymentStore) -> None:
        events: list[tuple[float, int]] = []
        for payment in store.payments():
            if payment.completed_at is None:
                continue  # never confirmed: no money moved
            total = payment.record["totalCharge"]
            events.append((payment.completed_at, total))
            if payment.cancel_at is not None:
                events.append((payment.cancel_at, -total))
        events.sort()
        self._times = [t for t, _ in events]
        self._sums = [0, *accumulate(amount for _, amount in events)]
        self._version = store.version

    def _net_in(self, moment: float) -> int:
        return self._sums[bisect_right(self._times, moment)]

    def balance(self, store: PaymentStore, now: float) -> int:
        if store.version != self._version:
            self._rebuild(store)
        slot = slot_start(now)
        paid = 0
        payout = self._first_payout
        while payout <= slot:
            paid = max(paid, self._net_in(payout - PAYOUT_COVERS_UNTIL))
            payout += WEEK
        return self._net_in(slot) - paid
