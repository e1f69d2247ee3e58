"""Everything one sandbox knows: payments, sessions, key, clock, faults.

Thread-safe: HTTP handlers (uvicorn's thread) and tests (their own thread) share one
instance; every method takes the lock. Times are epoch seconds inside, aware KST datetimes
at the edges.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import hmac
import math
import random
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from point3_pipeline.models import KST
from point3_pipeline.sandbox.clock import SandboxClock
from point3_pipeline.sandbox.config import SandboxConfig
from point3_pipeline.sandbox.data import (
    CLIENT_IDENTIFICATION,
    PaymentFactory,
    generate_history,
    history_days,
    kst_stamp,
)
from point3_pipeline.sandbox.errors import ApiError
from point3_pipeline.sandbox.faults import Faults
from point3_pipeline.sandbox.hostile import junk_page, junk_payments
from point3_pipeline.sandbox.profiles import MerchantProfile, merchant_profiles
from point3_pipeline.sandbox.rules import amount_problems, culture_problems
from point3_pipeline.sandbox.settlement import SettlementLedger, SettlementTerms, bank_csv
from point3_pipeline.sandbox.stall import StallGate
from point3_pipeline.sandbox.store import InjectedRecord, Payment, PaymentStore

CONFIRM_WINDOW_SECONDS = 30
MAX_RAW_COPIES = 100_000
CANCEL_BATCH_SECONDS = 5 * 60
# Fields a caller of add_payment may set; the timestamps always say "now".
SETTABLE_FIELDS = frozenset({
    "signature", "userId", "clientNickname", "purchasingProductName", "totalCharge", "taxFreeAmount", "vat",
    "orderIdFromClient", "clientIdentification", "clientGeneratedUserId", "paymentMethodType", "cultureExpenseType",
})


@dataclass
class Session:
    """A payment token's request, waiting for the widget."""

    request: dict[str, Any]
    created_at: float
    used: bool = False


def next_cancel_batch(moment: float) -> int:
    """The first 5-minute boundary strictly after `moment`."""
    return (math.floor(moment / CANCEL_BATCH_SECONDS) + 1) * CANCEL_BATCH_SECONDS


def _epoch(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("times must be aware datetimes")
    return math.floor(moment.timestamp())


class SandboxState:
    """One merchant of the sandbox. Several share one clock and one stall gate (merchants.py)."""

    def __init__(self, config: SandboxConfig | None = None, *, profile: MerchantProfile | None = None,
                 clock: SandboxClock | None = None, stall_gate: StallGate | None = None):
        self.config = config = config or SandboxConfig()
        self.profile = profile = profile or merchant_profiles(config, 1)[0]
        self._lock = threading.RLock()
        self.clock = clock or SandboxClock(config.start_at, config.speed)
        self._key = profile.key
        self._faults = config.faults
        self._fault_rng = random.Random(profile.seed)
        self._injected_raw: dict[dt.date, list[bytes]] = {}  # KST day -> raw records, see inject_raw()
        self.stall_gate = stall_gate or StallGate()  # thread-safe on its own: not under self._lock
        self._sessions: dict[str, Session] = {}
        self.store = PaymentStore()
        days = history_days(self.clock.now().date(), config.days, config.future_days)
        self._factory = PaymentFactory(random.Random(profile.seed), profile.per_day * len(days),
                                       categories=profile.categories, cancel_share=profile.cancel_share,
                                       month_end_cancel_share=profile.month_end_cancel_share)
        # Building 200k records triggers many full collections that find nothing to free.
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            self.store.load(self._historic(days))
        finally:
            if gc_enabled:
                gc.enable()
        self._ledger = SettlementLedger(days[0] if days else self.clock.now().date(), profile.terms)

    def _historic(self, days: list[dt.date]):
        for item in generate_history(self._factory, days, self.profile.per_day):
            cancel_at = None if item.cancel_requested_at is None else next_cancel_batch(item.cancel_requested_at)
            yield Payment(item.record, item.accepted_at, completed_at=item.accepted_at, cancel_at=cancel_at)

    # --- merchant key -------------------------------------------------------------------

    @property
    def key(self) -> str:
        with self._lock:
            return self._key

    def key_matches(self, key: str) -> bool:
        with self._lock:
            return hmac.compare_digest(key.encode(), self._key.encode())

    def rotate_key(self) -> str:
        with self._lock:
            self._key = "sk_sandbox_" + secrets.token_hex(16)
            return self._key

    # --- faults ---------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, **changes: Any) -> Faults:
        with self._lock:
            self._faults = self._faults.changed(**changes)
            return self._faults

    def roll(self, rate: float) -> bool:
        """True for a `rate` share of calls; seeded, so a fault run can be replayed."""
        if rate <= 0:
            return False
        with self._lock:
            return self._fault_rng.random() < rate

    # --- payment flow ---------------------------------------------------------------------

    def create_token(self, request: dict[str, Any]) -> str:
        """Store a validated request; the token is standard base64, so it has + / = in it."""
        token = base64.b64encode(secrets.token_bytes(25)).decode()
        with self._lock:
            self._sessions[token] = Session(dict(request), self.clock.timestamp())
        return token

    def has_session(self, token: str) -> bool:
        with self._lock:
            return token in self._sessions

    def session(self, token: str) -> Session:
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                raise ApiError(404, "unknown payment token (was it URL-encoded?)")
            if session.used:
                raise ApiError(410, "this payment token was already used")
            return session

    def approve(self, token: str) -> str:
        """The user pressed 결제하기: issue the signature; confirm must follow within 30 s."""
        with self._lock:
            session = self.session(token)
            session.used = True
            now = self.clock.timestamp()
            request = session.request
            accepted = math.floor(now)
            record = {
                "signature": self._factory.signature(),
                "userId": self._factory.user_id_for(request["clientGeneratedUserId"]),
                "clientNickname": request["clientNickname"],
                "purchasingProductName": request["purchasingProductName"],
                "totalCharge": request["totalCharge"],
                "taxFreeAmount": request["taxFreeAmount"],
                "vat": request["vat"],
                "orderIdFromClient": request["orderIdFromClient"],
                "clientIdentification": CLIENT_IDENTIFICATION,
                "clientGeneratedUserId": request["clientGeneratedUserId"],
                "paymentMethodType": self._factory.payment_method(),
                "cultureExpenseType": request["cultureExpenseType"],
                "timeStampOnRequest": kst_stamp(math.floor(session.created_at)),
                "timeStampOnAccept": kst_stamp(accepted),
            }
            self.store.insert(Payment(record, accepted, completed_at=None,
                                      auto_cancel_at=now + CONFIRM_WINDOW_SECONDS))
            return record["signature"]

    def confirm(self, signature: str) -> dict[str, Any]:
        with self._lock:
            now = self.clock.timestamp()
            # point3 documents only 400, 401 and 500 for confirm: an unknown signature is a bad request.
            payment = self._visible_payment(signature, now, unknown_status=400)
            if payment.completed_at is not None:
                raise ApiError(400, f"payment {signature} is already confirmed")
            if payment.auto_cancel_at is not None and now > payment.auto_cancel_at:
                raise ApiError(400, f"the {CONFIRM_WINDOW_SECONDS}-second confirm window for this signature expired; "
                                    "the payment was cancelled automatically")
            if payment.cancel_at is not None:
                raise ApiError(400, "the payment was cancelled before it was confirmed")
            payment.auto_cancel_at = None
            payment.completed_at = now
            self.store.touch()
            return dict(payment.record)

    def _visible_payment(self, signature: str, now: float, unknown_status: int = 404) -> Payment:
        payment = self.store.by_signature.get(signature)
        if payment is None or payment.epoch > now:
            raise ApiError(unknown_status, f"no payment with signature {signature[:64]!r}")
        return payment

    # --- after payment --------------------------------------------------------------------

    def cancel(self, signature: str) -> None:
        """Accept a cancellation; it is processed at the next 5-minute batch."""
        with self._lock:
            now = self.clock.timestamp()
            payment = self._visible_payment(signature, now)
            batch = next_cancel_batch(now)
            # Asking again is harmless (a retry); an earlier scheduled processing time stays.
            if payment.cancel_at is None or payment.cancel_at > batch:
                payment.cancel_at = batch
                self.store.touch()

    def payment(self, signature: str) -> dict[str, Any]:
        with self._lock:
            now = self.clock.timestamp()
            return self._visible_payment(signature, now).to_dict(now)

    def payments_by_order(self, order_id: str) -> list[dict[str, Any]]:
        with self._lock:
            now = self.clock.timestamp()
            return [p.to_dict(now) for p in self.store.by_order(order_id, now)]

    def latest_payment_of_user(self, client_user_id: str) -> dict[str, Any]:
        with self._lock:
            now = self.clock.timestamp()
            payment = self.store.latest_for_user(client_user_id, now)
            if payment is None:
                raise ApiError(404, f"no payment for user {client_user_id[:64]!r}")
            return payment.to_dict(now)

    def settlement_balance(self, now: dt.datetime | None = None) -> int:
        with self._lock:
            moment = self.clock.timestamp() if now is None else now.timestamp()
            return self._ledger.balance(self.store, moment)

    @property
    def settlement_terms(self) -> SettlementTerms:
        with self._lock:
            return self._ledger.terms

    def set_settlement_terms(self, **changes: Any) -> SettlementTerms:
        """Change fees, credit timing, payouts or the deposit faults (fields of SettlementTerms)."""
        with self._lock:
            merged = {**self._ledger.terms.to_json(), **changes}
            self._ledger.set_terms(SettlementTerms.from_json(merged))
            return self._ledger.terms

    def balance_history(self, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, int]]:
        """The balance /api/settlement served at each 30-minute refresh from `start` to `end`
        (exclusive, and never past now): what a merchant would have seen had it looked."""
        with self._lock:
            end_epoch = min(end.timestamp(), self.clock.timestamp())
            rows = self._ledger.history(self.store, _epoch(start), end_epoch)
        return [(dt.datetime.fromtimestamp(slot, KST), balance) for slot, balance in rows]

    def deposits_csv(self, start: dt.datetime, end: dt.datetime) -> str:
        """The bank's 거래내역 CSV of the payouts made from `start` to `end` (never past now)."""
        with self._lock:
            end_epoch = min(end.timestamp(), self.clock.timestamp())
            return bank_csv(self._ledger.deposits(self.store, _epoch(start), end_epoch))

    def page(self, start: dt.datetime, end: dt.datetime | None, page: int, count: int) -> list[bytes]:
        """One page of the date endpoint, each record already JSON."""
        if page < 1 or count < 1:
            raise ValueError("page and count start at 1")
        with self._lock:
            faults = self._faults
            if faults.max_page_size is not None and count > faults.max_page_size:
                raise ApiError(400, f"count {count} is larger than the maximum page size {faults.max_page_size}")
            now = self.clock.timestamp()
            start_epoch = _epoch(start)
            if end is None or end.timestamp() > now:
                end_epoch, inclusive = now, True  # nothing after now exists yet
            else:
                end_epoch, inclusive = _epoch(end), faults.end_inclusive
            last_epoch = math.floor(end_epoch if inclusive else end_epoch - 1)
            if faults.endless_pages:
                return junk_page(f"{self.profile.seed}:endless:{start_epoch}:{page}", start_epoch, last_epoch, count)
            if faults.drift_per_page:
                self._drift(faults.drift_per_page, start_epoch, last_epoch, now)
            lo, hi = self.store.window(start_epoch, end_epoch, inclusive)
            raw = self._injected_raw.get(start.astimezone(KST).date(), [])
            if faults.cycle_pages:
                return self._cycled_page(raw, lo, hi, page, count, now, start_epoch)
            return self._listing(raw, lo, hi, (page - 1) * count, count, now)

    def _cycled_page(self, raw: list[bytes], lo: int, hi: int, page: int, count: int, now: float,
                     start_epoch: int) -> list[bytes]:
        """Page 1 for odd pages, page 2 for even ones; junk fills both up so neither is short."""
        both = self._listing(raw, lo, hi, 0, 2 * count, now)
        missing = 2 * count - len(both)
        both += junk_payments(f"{self.profile.seed}:cycle:{start_epoch}:{count}", [start_epoch] * missing)
        return both[count:] if page % 2 == 0 else both[:count]

    def _listing(self, raw: list[bytes], lo: int, hi: int, offset: int, count: int, now: float) -> list[bytes]:
        """`count` records from `offset` of a window's listing: the injected raw records first,
        then the stored entries lo..hi in the sort order."""
        head = raw[offset:offset + count]
        count -= len(head)
        offset = max(0, offset - len(raw))
        if self._faults.sort_order == "asc":
            indexes = range(lo + offset, min(lo + offset + count, hi))
        else:
            top = hi - 1 - offset
            indexes = range(top, max(top - count, lo - 1), -1)
        entries = self.store.entries
        return head + [entries[i].to_json(now) for i in indexes]

    def _drift(self, how_many: int, first: int, last: int, now: float) -> None:
        """Payments that arrive while a window is paged: new, inside it, completed now."""
        if last < first:
            return
        rng = self._factory.rng
        for _ in range(how_many):
            epoch = rng.randint(first, last)
            record = self._factory.record(epoch)
            self.store.insert(Payment(record, epoch, completed_at=now))

    # --- test and demo controls -----------------------------------------------------------

    def orders(self, now: dt.datetime | None = None) -> list[Any]:
        """Ground truth: every record the lookups would return at `now`, by accept time."""
        with self._lock:
            moment = self.clock.timestamp() if now is None else now.timestamp()
            return [entry.to_dict(moment) for entry in self.store.visible(moment)]

    def add_payment(self, **fields: Any) -> dict[str, Any]:
        """A new confirmed payment accepted now; `fields` override the generated values."""
        unknown = sorted(set(fields) - SETTABLE_FIELDS)
        if unknown:
            raise ValueError(f"add_payment cannot set {', '.join(unknown)}")
        with self._lock:
            now = self.clock.timestamp()
            accepted = math.floor(now)
            record = self._factory.record(accepted)
            if "totalCharge" in fields and not {"vat", "taxFreeAmount"} & set(fields) and type(fields["totalCharge"]) is int:
                vat = round(fields["totalCharge"] / 11)  # keep the VAT rule unless told otherwise
                record.update(vat=vat, taxFreeAmount=fields["totalCharge"] - vat)
            record.update(fields)
            problems = amount_problems(record) + culture_problems(record)
            for name in SETTABLE_FIELDS - {"totalCharge", "taxFreeAmount", "vat"}:
                if not isinstance(record.get(name), str):
                    problems.append(f"{name} must be a string")
            if problems:
                raise ValueError("; ".join(problems))
            if "signature" in fields and not self._factory.claim_signature(record["signature"]):
                raise ValueError(f"signature {record['signature']!r} is already taken")
            payment = Payment(record, accepted, completed_at=now)
            self.store.insert(payment)
            return payment.to_dict(now)

    def add_uncredited_payment(self, at: dt.datetime, total: int) -> dict[str, Any]:
        """A payment the lookups list as completed at `at` but the settlement balance never
        got: the discrepancy a reconciliation must show."""
        with self._lock:
            epoch = _epoch(at)
            record = self._factory.record(epoch)
            vat = round(total / 11)
            record.update(totalCharge=total, vat=vat, taxFreeAmount=total - vat)
            # completed_at None keeps it out of the ledger; no auto-cancel keeps it active
            self.store.insert(Payment(record, epoch, completed_at=None))
            return dict(record)

    def inject_raw(self, day: dt.date, raw: bytes, copies: int = 1) -> None:
        """Serve `copies` of `raw` verbatim (any bytes) first in the date endpoint's listing of
        every window whose startDate falls on `day` (KST). They count in the page's record count
        and are not stored: no lookup, orders() or settlement sees them."""
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise ValueError(f"day must be a date, not {day!r}")
        if not isinstance(raw, bytes) or not raw:
            raise ValueError("raw must be non-empty bytes")
        if type(copies) is not int or not 1 <= copies <= MAX_RAW_COPIES:
            raise ValueError(f"copies must be an integer from 1 to {MAX_RAW_COPIES}, not {copies!r}")
        with self._lock:
            self._injected_raw.setdefault(day, []).extend([raw] * copies)

    def clear_injected_raw(self) -> None:
        with self._lock:
            self._injected_raw.clear()

    def inject_records(self, records: list[Any], at: dt.datetime) -> None:
        """Store raw records as they are; the date endpoint serves them for windows containing `at`."""
        epoch = _epoch(at)
        with self._lock:
            for raw in records:
                self.store.insert(InjectedRecord(raw, epoch))
