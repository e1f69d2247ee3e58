"""Payments kept sorted by accept time (then signature), with the lookups' indexes.

The date endpoint is the hot path: a window is two bisects on a list of epoch seconds,
and each record's JSON is built once per cancel state and reused across pages.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson


class Payment:
    """One stored payment. `record` is the lookup record without isCanceled.

    Times are epoch seconds. A payment counts for settlement from `completed_at` (None while
    a widget payment awaits confirm). It reads as cancelled from `cancel_at` (a processed
    cancellation) or after `auto_cancel_at` (the confirm deadline, cleared by confirm).
    """

    __slots__ = ("signature", "epoch", "record", "completed_at", "auto_cancel_at", "cancel_at", "_json")

    def __init__(self, record: dict, epoch: int, *, completed_at: float | None,
                 auto_cancel_at: float | None = None, cancel_at: float | None = None):
        self.signature: str = record["signature"]
        self.epoch = epoch
        self.record = record
        self.completed_at = completed_at
        self.auto_cancel_at = auto_cancel_at
        self.cancel_at = cancel_at
        self._json: list[bytes | None] = [None, None]  # [live, cancelled]

    def is_canceled(self, now: float) -> bool:
        return ((self.cancel_at is not None and self.cancel_at <= now)
                or (self.auto_cancel_at is not None and now > self.auto_cancel_at))

    def to_dict(self, now: float) -> dict[str, Any]:
        return {**self.record, "isCanceled": self.is_canceled(now)}

    def to_json(self, now: float) -> bytes:
        canceled = self.is_canceled(now)
        cached = self._json[canceled]
        if cached is None:
            cached = self._json[canceled] = orjson.dumps({**self.record, "isCanceled": canceled})
        return cached


class InjectedRecord:
    """A raw record stored as given (test input for hostile data); never validated."""

    __slots__ = ("signature", "epoch", "_json")

    def __init__(self, raw: Any, epoch: int):
        signature = raw.get("signature") if isinstance(raw, dict) else None
        self.signature = signature if isinstance(signature, str) else ""  # sort key only
        self.epoch = epoch
        self._json = _dumps_anything(raw)

    def to_dict(self, now: float) -> Any:
        return json.loads(self._json)  # json, not orjson: it keeps integers beyond 64 bits

    def to_json(self, now: float) -> bytes:
        return self._json


Entry = Payment | InjectedRecord


class PaymentStore:
    def __init__(self) -> None:
        self._epochs: list[int] = []
        self.entries: list[Entry] = []
        self.by_signature: dict[str, Payment] = {}
        self._by_order: dict[str, list[Payment]] = defaultdict(list)
        self._by_user: dict[str, list[Payment]] = defaultdict(list)
        self.version = 0  # bumped on every change settlement depends on

    def load(self, payments: Iterable[Payment]) -> None:
        """Bulk insert (one sort instead of many list inserts)."""
        for payment in payments:
            self._index(payment)
            self.entries.append(payment)
        self.entries.sort(key=lambda e: (e.epoch, e.signature))
        self._epochs = [e.epoch for e in self.entries]
        self.version += 1

    def insert(self, entry: Entry) -> None:
        lo = bisect_left(self._epochs, entry.epoch)
        hi = bisect_right(self._epochs, entry.epoch, lo)
        while lo < hi and self.entries[lo].signature <= entry.signature:
            lo += 1
        self._epochs.insert(lo, entry.epoch)
        self.entries.insert(lo, entry)
        if isinstance(entry, Payment):
            self._index(entry)
        self.version += 1

    def _index(self, payment: Payment) -> None:
        self.by_signature[payment.signature] = payment
        order_id = payment.record.get("orderIdFromClient")
        if isinstance(order_id, str):
            self._by_order[order_id].append(payment)
        user = payment.record.get("clientGeneratedUserId")
        if isinstance(user, str):
            self._by_user[user].append(payment)

    def touch(self) -> None:
        self.version += 1

    def visible_end(self, now: float) -> int:
        """Index just past the last entry accepted at or before now."""
        return bisect_right(self._epochs, now)

    def window(self, start: int, end: float, end_inclusive: bool) -> tuple[int, int]:
        lo = bisect_left(self._epochs, start)
        hi = bisect_right(self._epochs, end) if end_inclusive else bisect_left(self._epochs, end)
        return lo, max(lo, hi)

    def visible(self, now: float) -> list[Entry]:
        return self.entries[: self.visible_end(now)]

    def by_order(self, order_id: str, now: float) -> list[Payment]:
        return sorted((p for p in self._by_order.get(order_id, ()) if p.epoch <= now),
                      key=lambda p: (p.epoch, p.signature))

    def latest_for_user(self, client_user_id: str, now: float) -> Payment | None:
        visible = [p for p in self._by_user.get(client_user_id, ()) if p.epoch <= now]
        return max(visible, key=lambda p: (p.epoch, p.signature), default=None)

    def payments(self) -> list[Payment]:
        return list(self.by_signature.values())


def _dumps_anything(raw: Any) -> bytes:
    """JSON for any Python value: hostile records must be servable, whatever they hold."""
    try:
        return orjson.dumps(raw, default=str, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:  # integers beyond 64 bits, lone surrogates: the stdlib escapes them
        return json.dumps(raw, default=str, ensure_ascii=True, allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError):
        return json.dumps(repr(raw)[:10000]).encode()
