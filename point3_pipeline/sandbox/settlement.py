"""The settleable balance, as point3 reports it: refreshed every 30 minutes.

Money in: each completed payment's totalCharge less point3's fee (a share of the sale, rounded
to the won half up, plus 10% VAT on the fee if the terms say so), credited at completion or at
00:00 KST of the day D+N. Money out: processed cancellations of completed payments (the whole
totalCharge; the fee is not returned), and payouts: weekly, every Wednesday 00:00 KST, of
everything credited by the Monday 00:00 before it, or daily, at 00:00 of day D+N, of everything
credited by the end of day D. The reported value is the balance at the start of the current
30-minute slot. Each payout reaches the merchant's bank the morning of its day (deposits()).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from typing import Any

from point3_pipeline.models import KST
from point3_pipeline.sandbox.store import PaymentStore

REFRESH_SECONDS = 30 * 60
DAY = 86400
WEEK = 7 * DAY
PAYOUT_WEEKDAY = 2  # Wednesday
PAYOUT_COVERS_UNTIL = 2 * DAY  # the weekly payout covers up to the Monday before it
PAYOUT_SCHEDULES = ("weekly", "daily")
PPM = 1_000_000
DEPOSIT_HOUR = 9  # the bank credits a payout at 09:00 KST of its day
DEPOSIT_SHORTFALL = 1_000  # a "differing" deposit arrives this much short (a bank's transfer fee)
DEPOSIT_MEMO = "포인트쓰리정산"
OPENING_ACCOUNT_BALANCE = 1_000_000  # the bank account's balance before the first deposit
# A Korean bank's 거래내역 export (the columns the pipeline's import takes as its guide).
BANK_COLUMNS = ("거래일시", "적요", "출금액", "입금액", "잔액", "내용", "거래점")


def slot_start(now: float) -> int:
    # KST has no DST and a whole-hour offset, so epoch slots line up with xx:00 and xx:30.
    return math.floor(now / REFRESH_SECONDS) * REFRESH_SECONDS


def _kst_midnight(epoch: float) -> int:
    day = dt.datetime.fromtimestamp(epoch, KST).date()
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=KST).timestamp())


@dataclass(frozen=True)
class SettlementTerms:
    """point3's settlement contract with the merchant, as the sandbox applies it."""

    fee_ppm: int = 0  # the fee as parts per million of each sale (33_000 = 3.3%)
    fee_vat: bool = False  # 10% VAT charged on the fee
    credit_delay_days: int = 0  # 0: a sale raises the balance at once; N: at 00:00 KST of day D+N
    payout: str = "weekly"  # or "daily"
    payout_delay_days: int = 1  # daily: day D's credits are paid at 00:00 of day D+N (N >= 1)
    missing_deposit_on: dt.date | None = None  # the payout of this KST day never reaches the bank
    differing_deposit_on: dt.date | None = None  # ... reaches it DEPOSIT_SHORTFALL won short
    business_fee_ppm: dict[str, int] = field(default_factory=dict)  # clientNickname -> its own fee_ppm

    def __post_init__(self) -> None:
        for name, low in (("fee_ppm", 0), ("credit_delay_days", 0), ("payout_delay_days", 1)):
            value = getattr(self, name)
            if type(value) is not int or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
        if self.fee_ppm >= PPM:
            raise ValueError(f"fee_ppm must be below {PPM:,} (100%), not {self.fee_ppm}")
        if type(self.fee_vat) is not bool:
            raise ValueError(f"fee_vat must be true or false, not {self.fee_vat!r}")
        if not isinstance(self.business_fee_ppm, dict) or not all(
            isinstance(k, str) and type(v) is int and 0 <= v < PPM for k, v in self.business_fee_ppm.items()
        ):
            raise ValueError(f"business_fee_ppm must map clientNickname to a fee_ppm below {PPM:,}")
        if self.payout not in PAYOUT_SCHEDULES:
            raise ValueError(f"payout must be one of {', '.join(PAYOUT_SCHEDULES)}, not {self.payout!r}")
        for name in ("missing_deposit_on", "differing_deposit_on"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, dt.date) or isinstance(value, dt.datetime)):
                raise ValueError(f"{name} must be a date, not {value!r}")

    def fee(self, total: int, nickname: str | None = None) -> int:
        """What point3 keeps of one sale: the fee rounded to the won (half up), and its VAT."""
        fee = (total * self.business_fee_ppm.get(nickname, self.fee_ppm) + PPM // 2) // PPM
        return fee + ((fee + 5) // 10 if self.fee_vat else 0)

    def credited_at(self, completed_at: float) -> float:
        if self.credit_delay_days == 0:
            return completed_at
        return _kst_midnight(completed_at) + self.credit_delay_days * DAY

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SettlementTerms:
        unknown = sorted(set(body) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown settlement field(s) {', '.join(unknown)}; use {', '.join(cls.__dataclass_fields__)}")
        values = dict(body)
        for name in ("missing_deposit_on", "differing_deposit_on"):
            if isinstance(values.get(name), str):
                try:
                    values[name] = dt.date.fromisoformat(values[name])
                except ValueError:
                    raise ValueError(f"{name} must be a date as YYYY-MM-DD, not {values[name]!r:.40}") from None
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in asdict(self).items()}


class SettlementLedger:
    def __init__(self, origin: dt.date, terms: SettlementTerms | None = None):
        self._origin = dt.datetime(origin.year, origin.month, origin.day, tzinfo=KST)
        self._version = -1
        self._times: list[float] = []
        self._sums: list[int] = [0]
        self.terms = terms or SettlementTerms()

    def set_terms(self, terms: SettlementTerms) -> None:
        self.terms = terms
        self._version = -1  # every credit and payout follows the new terms

    def _rebuild(self, store: PaymentStore) -> None:
        terms = self.terms
        events: list[tuple[float, int]] = []
        for payment in store.payments():
            if payment.completed_at is None:
                continue  # never confirmed: no money moved
            total = payment.record["totalCharge"]
            fee = terms.fee(total, payment.record.get("clientNickname"))
            events.append((terms.credited_at(payment.completed_at), total - fee))
            if payment.cancel_at is not None:
                events.append((payment.cancel_at, -total))
        events.sort()
        self._times = [t for t, _ in events]
        self._sums = [0, *accumulate(amount for _, amount in events)]
        self._version = store.version

    def _net_in(self, moment: float) -> int:
        return self._sums[bisect_right(self._times, moment)]

    def _schedule(self) -> tuple[int, int, int]:
        """(first payout, seconds between payouts, how long before a payout its cutoff is)."""
        origin = self._origin
        if self.terms.payout == "daily":
            return int(origin.timestamp()) + DAY, DAY, (self.terms.payout_delay_days - 1) * DAY
        first = origin + dt.timedelta(days=(PAYOUT_WEEKDAY - origin.weekday()) % 7)
        return int(first.timestamp()), WEEK, PAYOUT_COVERS_UNTIL

    def _payouts(self, store: PaymentStore, until: float) -> list[tuple[int, int]]:
        """(payout time, amount) of each payout at or before `until` that moved money."""
        if store.version != self._version:
            self._rebuild(store)
        payout, step, covers = self._schedule()
        paid, out = 0, []
        while payout <= until:
            due = self._net_in(payout - covers)
            if due > paid:
                out.append((payout, due - paid))
                paid = due
            payout += step
        return out

    def balance(self, store: PaymentStore, now: float) -> int:
        slot = slot_start(now)
        paid = sum(amount for _, amount in self._payouts(store, slot))
        return self._net_in(slot) - paid

    def history(self, store: PaymentStore, start: float, end: float) -> list[tuple[int, int]]:
        """(slot, balance) of every 30-minute slot from `start` until `end` (exclusive)."""
        payouts = self._payouts(store, end)
        times = [t for t, _ in payouts]
        paid = [0, *accumulate(a for _, a in payouts)]
        slot = slot_start(start) + (REFRESH_SECONDS if slot_start(start) < start else 0)
        out = []
        while slot < end:
            out.append((slot, self._net_in(slot) - paid[bisect_right(times, slot)]))
            slot += REFRESH_SECONDS
        return out

    def deposits(self, store: PaymentStore, start: float, end: float) -> list[tuple[dt.datetime, int, int]]:
        """(bank time, amount, account balance after it) of the deposits the bank booked from
        `start` until `end`. The running balance counts every deposit since the first payout,
        so overlapping exports agree on it."""
        terms, out = self.terms, []
        balance = OPENING_ACCOUNT_BALANCE
        for moment, amount in self._payouts(store, end):
            day = dt.datetime.fromtimestamp(moment, KST).date()
            booked = dt.datetime(day.year, day.month, day.day, DEPOSIT_HOUR, tzinfo=KST)
            if day == terms.missing_deposit_on or booked.timestamp() >= end:
                continue
            if day == terms.differing_deposit_on:
                amount -= DEPOSIT_SHORTFALL
            balance += amount
            if booked.timestamp() >= start:
                out.append((booked, amount, balance))
        return out


def bank_csv(deposits: list[tuple[dt.datetime, int, int]]) -> str:
    """The deposits as a bank's 거래내역 CSV (amounts with thousands separators, as banks write them)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(BANK_COLUMNS)
    for at, amount, balance in deposits:
        writer.writerow([f"{at:%Y.%m.%d %H:%M:%S}", "타행이체", "0", f"{amount:,}", f"{balance:,}", DEPOSIT_MEMO, "인터넷"])
    return buffer.getvalue()
