"""The settlement roll-forward (미정산금 잔액 대사): opening + sales − cancellations − fees −
payouts = closing, from the balance history and the payments.

point3 reports only the current balance, refreshed every 30 minutes: an observation is the
balance as at the start of its refresh slot, and everything up to and including that instant
is in it. Between two observations (an interval, (opening slot, closing slot]) the balance
should move by the sales credited (less the declared fee and its VAT) and the cancellations
in it. What else moved it (the residual) is one of two things:
- a payout, when the residual is negative and either
  (a) the balance fell by more than the interval's cancellations explain: a credit that never
      came cannot make a balance fall, only money paid out can; or
  (b) the fall has a payout's level. A payout pays what was credited by its cut-off and
      empties the balance down to what came after it, at 00:00 KST (the sandbox's weekly and
      daily schedules; point3's docs are silent). So: the interval holds a 00:00 and either
      closes there at a balance of exactly 0 (the cut-off is the payout itself: the credits
      of that instant went out with it) or fell by exactly the balance observed at a 00:00
      in the CUTOFF_DAYS before (its cut-off: the Monday before a weekly payout, day D for a
      daily D+N one). This finds the payouts that credits arriving at the same 00:00 hide
      (daily payouts with a credit delay), whose balance need not fall;
- unexplained (미확인): anything else, never hidden.
Limits, stated rather than hidden. The balance alone cannot tell a payout from a credit that
never came in the same interval: where the balance fell (a), or the payout emptied it at the
credits' instant (b), the missing credit is read as part of the payout and shows as its
deposit's difference; where the payout paid a cut-off balance (b), the two together have no
payout's level and stay unexplained, the deposit then without a payout. A credit that never
came whose net amount equals a 00:00 balance of the week before, or which was all of the
balance at a 00:00, is read as a payout (one without a deposit). A payout hidden by credits
that is not at 00:00, or whose cut-off has no observation, stays unexplained; so does one in
an interval also holding a cancellation point3 does not date, or is read with it by (a) when
the balance fell (its amount then off by the cancellation, which shows at its detection).

Cancellations carry bounds, not a time: after the last read that saw the payment active (or
its acceptance, if it was already cancelled when first seen) and no later than the read that
saw it cancelled. One whose bounds fit inside one interval belongs there. Any other is placed
by the balance: in the first interval within its bounds (and without a payout's level) whose
unexplained change some of them explain to the won, the fewest that do (a subset sum, any
number of them; when amounts repeat several sets fit, so which cancellations is a best guess
while the amounts are what the balance shows); if none, at its detection. The search is
bounded (subsets.SEARCH_STEPS per interval, HISTORY_SEARCH_STEPS per history): where it stops
at the bound, the interval's change stays payout or unexplained, its candidates go on to later
intervals or their detection, and the period's notes say so.

A balance "as at" an instant T rests on the last observation at or before T (its slot) and
the next one: it is that observation's balance plus the sales and fees credited since its
slot. The interval that straddles T counts its cancellations, payout and unexplained after T
(with its closing observation). So a period's lines always add up: opening + sales −
cancellations − fees − payouts + unexplained = closing.

Money is int won; the fee rate is parts per million; no floats anywhere.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from fractions import Fraction

import duckdb

from point3_pipeline.models import KST
from point3_pipeline.subsets import SEARCH_STEPS, subset_summing_to

SLOT = dt.timedelta(minutes=30)
PPM = 1_000_000
CUTOFF_DAYS = 7  # a payout's cut-off is at most a week before it (a weekly schedule's period)
HISTORY_SEARCH_STEPS = 5_000_000  # subset-search steps for one history, all its intervals together


@dataclass(frozen=True)
class BusinessFee:
    """A business's own fee contract (the businesses file), for its payments."""

    client_nickname: str
    client_identification: str | None
    fee_ppm: int
    fee_vat: bool


@dataclass(frozen=True)
class Terms:
    """The merchant's declared settlement terms and the reconciliation's tolerances."""

    fee_ppm: int = 0  # the fee as parts per million of each sale (33_000 = 3.3%)
    fee_vat: bool = False  # 10% VAT is charged on the fee
    credit_delay_days: int = 0  # 0: a sale raises the balance at once; N: at 00:00 KST of day D+N
    match_days: int = 3  # a payout's deposit is expected within this many days after it
    unexplained_threshold: int = 0  # won; beyond it the Dagster check warns
    deposit_overdue_days: int = 5  # a payout without a deposit this long before the latest import warns
    business_fees: tuple[BusinessFee, ...] = ()  # overrides of the fee for some businesses' payments

    def describe(self) -> str:
        own = "".join(f"; {b.client_nickname}: {percent_text(b.fee_ppm)}{' + VAT' if b.fee_vat else ''}"
                      for b in self.business_fees)
        return (f"fee {percent_text(self.fee_ppm)}{' + VAT' if self.fee_vat else ''}{own}, "
                f"credit D+{self.credit_delay_days}, deposit window {self.match_days} days")


def percent_text(ppm: int | Fraction) -> str:
    """A parts-per-million rate as a percent with up to 4 decimals, e.g. 33000 -> '3.3%'."""
    units = round(Fraction(ppm))  # a ppm is 1/10,000 of a percent
    whole, rest = divmod(abs(units), 10_000)
    sign = "-" if units < 0 else ""
    return f"{sign}{whole}.{rest:04d}".rstrip("0").rstrip(".") + "%"


@dataclass(frozen=True)
class Observation:
    observed_at: dt.datetime
    slot: dt.datetime  # the balance is as at this instant
    balance: int
    source: str  # 'api' or 'imported'


@dataclass
class Interval:
    """(opening.slot, closing.slot] and what moved the balance in it."""

    opening: Observation
    closing: Observation
    sales: int = 0
    sales_count: int = 0
    fees: int = 0  # fee and its VAT
    fee_vat: int = 0
    cancellations: int = 0
    cancellation_count: int = 0
    payout: int = 0
    unexplained: int = 0
    placed: list[Movement] = field(default_factory=list)  # untimed sales and cancellations put here
    search_cut_short: bool = False  # the search for what explains its balance change hit its bound

    @property
    def actual(self) -> int:
        return self.closing.balance - self.opening.balance

    @property
    def expected(self) -> int:
        return self.sales - self.fees - self.cancellations - self.payout


@dataclass(frozen=True)
class Movement:
    """A sale without an accept time, or a cancellation: known only to lie in (after, by]."""

    kind: str  # 'sale' or 'cancellation'
    signature: str
    amount: int  # totalCharge
    after: dt.datetime
    by: dt.datetime
    fee: int = 0  # a sale's fee with its VAT
    fee_vat: int = 0

    @property
    def effect(self) -> int:
        """What it does to the balance."""
        return self.amount - self.fee if self.kind == "sale" else -self.amount


@dataclass(frozen=True)
class Payout:
    after: dt.datetime  # the balance fell in (after, by]
    by: dt.datetime
    amount: int
    opening: Observation
    closing: Observation


@dataclass(frozen=True)
class AsAt:
    """A balance as at an instant, and the observations it rests on."""

    at: dt.datetime
    balance: int
    rests_on: Observation
    next_observation: Observation | None

    @property
    def exact(self) -> bool:
        return self.rests_on.slot == self.at

    def basis(self) -> str:
        o = self.rests_on
        text = f"{o.observed_at.astimezone(KST):%m-%d %H:%M} 관측 ({o.slot.astimezone(KST):%H:%M} 갱신분)"
        if self.exact:
            return text
        nxt = self.next_observation
        after = f", 다음 관측 {nxt.observed_at.astimezone(KST):%m-%d %H:%M}" if nxt else ", 이후 관측 없음"
        return f"{text} + 이후 결제·수수료{after}"


@dataclass
class Roll:
    """One period's roll-forward (a month or a day)."""

    start: dt.datetime
    end: dt.datetime
    opening: AsAt
    closing: AsAt
    sales: int = 0
    sales_count: int = 0
    cancellations: int = 0
    cancellation_count: int = 0
    fees: int = 0
    fee_vat: int = 0
    payouts: int = 0
    unexplained: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def expected_closing(self) -> int:
        return self.opening.balance + self.sales - self.cancellations - self.fees - self.payouts


@dataclass
class History:
    """Everything the roll-forward knows between two instants."""

    observations: list[Observation]
    intervals: list[Interval]
    slot_flows: dict[dt.datetime, tuple[int, int, int, int]]  # closing slot -> (sales, count, fees, fee VAT)
    unplaced: list[Movement]

    def payouts(self) -> list[Payout]:
        return [Payout(i.opening.slot, i.closing.slot, i.payout, i.opening, i.closing) for i in self.intervals if i.payout]


# --- reading the warehouse ---------------------------------------------------------------------

_OBSERVATIONS = """
    WITH bounds AS (
        SELECT coalesce((SELECT max(refresh_slot) FROM settlement_balance_history WHERE refresh_slot <= ?),
                        (SELECT min(refresh_slot) FROM settlement_balance_history)) AS lo,
               coalesce((SELECT min(refresh_slot) FROM settlement_balance_history WHERE refresh_slot >= ?),
                        (SELECT max(refresh_slot) FROM settlement_balance_history)) AS hi
    )
    SELECT observed_at, refresh_slot, balance, source
    FROM settlement_balance_history, bounds
    WHERE refresh_slot BETWEEN bounds.lo AND bounds.hi
    ORDER BY observed_at
"""

# Each sale with its fee: the business's declared rate where the businesses file gives one
# (an entry naming the payment's clientIdentification wins over one naming only its
# clientNickname), else the merchant's. The fee is per sale, rounded to the won half up; its
# VAT 10% of it, rounded the same way.
_PRICED_SALES = """
    WITH business_fees AS (
        SELECT unnest($nicknames::VARCHAR[]) AS nickname, unnest($identifications::VARCHAR[]) AS identification,
               unnest($ppms::BIGINT[]) AS ppm, unnest($vats::BOOLEAN[]) AS vat
    ),
    payments_near AS (
        SELECT signature, payment_date, accepted_at, total_charge, client_nickname, client_identification
        FROM payments
        WHERE payment_date BETWEEN CAST(timezone('Asia/Seoul', $lo) AS DATE) - to_days(CAST($delay AS INTEGER) + 1)
                               AND CAST(timezone('Asia/Seoul', $hi) AS DATE)
    ),
    rated AS (
        SELECT p.*, coalesce(exact.ppm, by_name.ppm, $ppm) AS ppm, coalesce(exact.vat, by_name.vat, $fee_vat) AS vat
        FROM payments_near AS p
        LEFT JOIN business_fees AS exact
            ON exact.nickname = p.client_nickname AND exact.identification = p.client_identification
        LEFT JOIN business_fees AS by_name
            ON by_name.nickname = p.client_nickname AND by_name.identification IS NULL
    ),
    priced AS (
        SELECT signature, payment_date, accepted_at, total_charge, vat,
               (CAST(total_charge AS HUGEINT) * ppm + 500000) // 1000000 AS fee,
               CASE WHEN $delay = 0
                    THEN coalesce(accepted_at, CAST(payment_date AS TIMESTAMP) AT TIME ZONE 'Asia/Seoul')
                    ELSE (CAST(payment_date AS TIMESTAMP) + to_days(CAST($delay AS INTEGER))) AT TIME ZONE 'Asia/Seoul'
               END AS credited_at
        FROM rated
    ),
    sales AS (
        SELECT *, CASE WHEN vat THEN (fee + 5) // 10 ELSE 0 END AS fee_vat FROM priced
    )
"""

# Sales by the 30-minute slot whose end closes the (slot start, slot end] they fall in. Every
# boundary the roll-forward uses (observation slots, midnights) is a slot end, so the sums are
# exact for any interval.
_SLOT_SALES = _PRICED_SALES + """
    , final AS (
        SELECT time_bucket(INTERVAL 30 MINUTES, credited_at - INTERVAL 1 MICROSECOND, 'Asia/Seoul')
                   + INTERVAL 30 MINUTES AS slot_end,
               sum(total_charge) AS sales, count(*) AS sales_count, sum(fee) AS fees, sum(fee_vat) AS fee_vat
        FROM sales
        WHERE credited_at > $lo AND credited_at <= $hi AND (accepted_at IS NOT NULL OR $delay > 0)
        GROUP BY 1
    )
    SELECT slot_end, CAST(sales AS HUGEINT), sales_count, CAST(fees AS HUGEINT), CAST(fee_vat AS HUGEINT)
    FROM final
"""

# A sale without an accept time (point3's examples have none) happened on its payment day.
_UNTIMED_SALES = _PRICED_SALES + """
    SELECT 'sale', signature, total_charge,
           CAST(payment_date AS TIMESTAMP) AT TIME ZONE 'Asia/Seoul',
           CAST(payment_date + 1 AS TIMESTAMP) AT TIME ZONE 'Asia/Seoul',
           CAST(fee + fee_vat AS HUGEINT), CAST(fee_vat AS HUGEINT)
    FROM sales
    WHERE accepted_at IS NULL AND $delay = 0 AND payment_date >= CAST(timezone('Asia/Seoul', $lo) AS DATE) - 1
    ORDER BY payment_date, signature
"""

# A reverted cancellation (is_anomaly) is a finding for the tax workbook, not money out.
_CANCELLATIONS = """
    SELECT 'cancellation', signature, total_charge,
           CASE WHEN first_seen_canceled OR canceled_after IS NULL
                THEN coalesce(accepted_at, CAST(payment_date AS TIMESTAMP) AT TIME ZONE 'Asia/Seoul')
                ELSE canceled_after END AS after,
           detected_at
    FROM cancellations
    WHERE NOT is_anomaly AND detected_at > ?
      AND coalesce(accepted_at, CAST(payment_date AS TIMESTAMP) AT TIME ZONE 'Asia/Seoul') < ?
    ORDER BY detected_at, signature
"""


def history(conn: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime, terms: Terms) -> History:
    """The observations bracketing [start, end], the intervals between them and what moved in each."""
    observations = [Observation(*row) for row in conn.execute(_OBSERVATIONS, [start, end]).fetchall()]
    if len(observations) < 2:
        return History(observations, [], {}, [])
    lo, hi = observations[0].slot, observations[-1].slot
    params = {"lo": lo, "hi": hi, "delay": terms.credit_delay_days, "ppm": terms.fee_ppm, "fee_vat": terms.fee_vat,
              "nicknames": [b.client_nickname for b in terms.business_fees],
              "identifications": [b.client_identification for b in terms.business_fees],
              "ppms": [b.fee_ppm for b in terms.business_fees], "vats": [b.fee_vat for b in terms.business_fees]}
    flows = {row[0]: tuple(int(v) for v in row[1:]) for row in conn.execute(_SLOT_SALES, params).fetchall()}
    movements = [Movement(*row) for row in conn.execute(_CANCELLATIONS, [lo, hi]).fetchall()]
    movements += [Movement(*head, fee=int(fee), fee_vat=int(vat))
                  for *head, fee, vat in conn.execute(_UNTIMED_SALES, params).fetchall()]
    intervals = [Interval(a, b) for a, b in zip(observations, observations[1:])]
    _add_sales(intervals, flows)
    unplaced = place(intervals, movements)
    classify(intervals)
    return History(observations, intervals, flows, unplaced)


def _add_sales(intervals: list[Interval], flows: dict[dt.datetime, tuple[int, int, int, int]]) -> None:
    closings = [i.closing.slot for i in intervals]
    for slot_end, (sales, count, fees, fee_vat) in flows.items():
        k = bisect_left(closings, slot_end)  # the first interval whose closing slot is at or after it
        if k == len(intervals) or intervals[k].opening.slot >= slot_end:
            continue  # outside the observed span
        i = intervals[k]
        i.sales += sales
        i.sales_count += count
        i.fees += fees + fee_vat
        i.fee_vat += fee_vat


def place(intervals: list[Interval], movements: list[Movement]) -> list[Movement]:
    """Put each untimed sale and cancellation in an interval (see the module's note); those
    that fall outside every interval are returned."""
    openings = [i.opening.slot for i in intervals]
    uncertain: list[Movement] = []
    for m in movements:
        k = bisect_right(openings, m.after) - 1  # the last interval opening at or before its lower bound
        if k >= 0 and m.by <= intervals[k].closing.slot:
            _take(intervals[k], m)
        else:
            uncertain.append(m)
    _explain_by_balance(intervals, uncertain)
    closings = [i.closing.slot for i in intervals]
    outside = []
    for m in uncertain:  # not explained by the balance: at its latest time, where it shows
        k = bisect_left(closings, m.by)
        if k < len(intervals) and intervals[k].opening.slot < m.by:
            _take(intervals[k], m)
        else:
            outside.append(m)
    return outside


def _take(interval: Interval, m: Movement) -> None:
    interval.placed.append(m)
    if m.kind == "sale":
        interval.sales += m.amount
        interval.sales_count += 1
        interval.fees += m.fee
        interval.fee_vat += m.fee_vat
    else:
        interval.cancellations += m.amount
        interval.cancellation_count += 1


def _residual(i: Interval) -> int:
    return i.actual - (i.sales - i.fees - i.cancellations)


def _explain_by_balance(intervals: list[Interval], uncertain: list[Movement]) -> None:
    """Put in each interval, in time order, the uncertain movements within their bounds whose
    effects add up to what its flows leave unexplained (a subset search, bounded per interval
    and per history); taken ones leave `uncertain`. A fall with a payout's level is left
    alone, so cancellations never explain a payout away."""
    cutoffs = _midnight_balances(intervals)
    budget = HISTORY_SEARCH_STEPS
    for i in intervals:
        residual = _residual(i)
        if not uncertain or residual == 0 or _pays_a_cutoff(i, residual, cutoffs):
            continue
        candidates = [m for m in uncertain if m.after < i.closing.slot and m.by > i.opening.slot]
        if not candidates:
            continue
        found = subset_summing_to(residual, [m.effect for m in candidates], min(SEARCH_STEPS, budget))
        budget -= found.steps
        i.search_cut_short = found.cut_short
        for k in found.indices or ():
            _take(i, candidates[k])
            uncertain.remove(candidates[k])


def classify(intervals: list[Interval]) -> None:
    """What the expected flows leave: a payout where the balance fell by more than the
    cancellations explain or the fall has a payout's level (see the module's note), else
    unexplained."""
    cutoffs = _midnight_balances(intervals)
    for i in intervals:
        residual = _residual(i)
        if residual < 0 and (i.actual < -i.cancellations or _pays_a_cutoff(i, residual, cutoffs)):
            i.payout = -residual
        else:
            i.unexplained = residual


def _midnight_balances(intervals: list[Interval]) -> dict[dt.datetime, int]:
    """The balances observed at 00:00 KST: the instants a payout's cut-off can be."""
    return {o.slot: o.balance for i in intervals for o in (i.opening, i.closing) if _kst_midnight(o.slot) == o.slot}


def _kst_midnight(moment: dt.datetime) -> dt.datetime:
    """00:00 KST of the day `moment` is in."""
    return moment.astimezone(KST).replace(hour=0, minute=0, second=0, microsecond=0)


def _pays_a_cutoff(i: Interval, residual: int, cutoffs: dict[dt.datetime, int]) -> bool:
    """Whether a fall of -`residual` in `i` has a payout's level: `i` holds a 00:00 KST and
    either closes there at a balance of 0 or fell by the balance observed at a 00:00 in the
    CUTOFF_DAYS before it."""
    payout_time = _kst_midnight(i.closing.slot)
    if residual >= 0 or payout_time <= i.opening.slot:
        return False
    if payout_time == i.closing.slot and i.closing.balance == 0:
        return True
    days = (payout_time - dt.timedelta(days=n) for n in range(CUTOFF_DAYS + 1))
    return any(cutoffs.get(cutoff) == -residual for cutoff in days if cutoff <= i.opening.slot)


# --- periods -----------------------------------------------------------------------------------


def as_at(h: History, moment: dt.datetime) -> AsAt | None:
    """The balance as at `moment`, or None before the first observation."""
    slots = [o.slot for o in h.observations]
    a = bisect_right(slots, moment) - 1
    if a < 0:
        return None
    rest = h.observations[a]
    nxt = h.observations[a + 1] if a + 1 < len(h.observations) else None
    sales, _, fees, _ = _flows_between(h, rest.slot, moment)
    return AsAt(moment, rest.balance + sales - fees, rest, nxt)


def _flows_between(h: History, lo: dt.datetime, hi: dt.datetime) -> tuple[int, int, int, int]:
    totals = [0, 0, 0, 0]
    for slot_end, values in h.slot_flows.items():
        if lo < slot_end <= hi:
            for n, v in enumerate(values):
                totals[n] += v
    return tuple(totals)  # type: ignore[return-value]


def roll(h: History, start: dt.datetime, end: dt.datetime) -> Roll | None:
    """The roll-forward of (start, end]; None when no observation reaches into it. Without an
    observation at or before `start` it starts at the first one; without one at or after
    `end` it stops at the last one (each said in its notes)."""
    if len(h.observations) < 2:
        return None
    first, last = h.observations[0].slot, h.observations[-1].slot
    notes = []
    if first > start:
        notes.append(f"이전 관측 없음: {first.astimezone(KST):%m-%d %H:%M}부터 (no earlier observation)")
    if last < end:
        notes.append(f"이후 관측 없음: {last.astimezone(KST):%m-%d %H:%M}까지 (no later observation)")
    lo, hi = max(start, first), min(end, last)
    if lo >= hi:
        return None
    opening, closing = as_at(h, lo), as_at(h, hi)
    r = Roll(lo, hi, opening, closing, notes=notes)
    r.sales, r.sales_count, fees, r.fee_vat = _flows_between(h, lo, hi)
    r.fees = fees + r.fee_vat
    for i in h.intervals:
        if lo < i.closing.slot <= hi:
            r.cancellations += i.cancellations
            r.cancellation_count += i.cancellation_count
            r.payouts += i.payout
            r.unexplained += i.unexplained
            for m in i.placed:
                if m.kind == "sale":  # untimed: counted with its interval's closing side
                    r.sales += m.amount
                    r.sales_count += 1
                    r.fees += m.fee
                    r.fee_vat += m.fee_vat
    cut_short = sum(1 for i in h.intervals if lo < i.closing.slot <= hi and i.search_cut_short)
    if cut_short:
        r.notes.append(f"취소 조합 탐색 한도 도달: {cut_short}개 구간 (the search for cancellations explaining "
                       f"the balance stopped at its bound in {cut_short} interval(s))")
    return r


def implied_fee_ppm(h: History, start: dt.datetime, end: dt.datetime) -> Fraction | None:
    """The fee rate (ppm of sales, its VAT included when charged) that best explains the
    balance's growth between payouts in (start, end]: per interval with sales and no payout
    or cancellation, the share of its sales that did not reach the balance; their median
    weighted by sales, so an interval holding a cancellation point3 does not date (or another
    discrepancy) does not pull it."""
    shares = sorted(
        (Fraction((i.sales - i.actual) * PPM, i.sales), i.sales)
        for i in h.intervals
        if start < i.closing.slot <= end and i.sales > 0 and not i.payout and not i.cancellation_count
    )
    half, seen = sum(w for _, w in shares), 0
    for share, weight in shares:
        seen += weight
        if 2 * seen >= half:
            return share
    return None
