"""Warehouses for report tests, built by inserting rows directly (with parameters)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json

from point3_pipeline.models import KST
from point3_pipeline.tax_split import refresh_tax_split
from point3_pipeline.warehouse import Warehouse


def kst(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=KST)


class Books:
    """A merchant's warehouse under construction: payments, cancellations, syncs, balances."""

    def __init__(self, path, *, run_id: int = 1):
        self.warehouse = Warehouse(path)
        self.run_id = run_id
        self._conn = None

    def _connect(self):
        # One connection for a burst of inserts (opening a DuckDB file costs tens of ms);
        # refresh() closes it before the warehouse is used.
        if self._conn is None:
            self._cm = self.warehouse.connect()
            self._conn = self._cm.__enter__()
        return contextlib.nullcontext(self._conn)

    def payment(
        self,
        signature: str,
        accepted_at: dt.datetime,
        *,
        total: int = 11_000,
        supply: int | None = None,
        vat: int | None = None,
        code: str | None = "a",
        order_id: str | None = None,
        product: str = "공연 티켓",
        method: str = "CARD",
        canceled_when_seen: bool = False,
        seen_at: dt.datetime | None = None,
        nickname: str = "테스트 극장",
        identification: str = "client-0001",
    ) -> None:
        if vat is None:
            vat = total // 11
        if supply is None:
            supply = total - vat
        seen_at = seen_at or accepted_at + dt.timedelta(minutes=10)
        raw = {"signature": signature, "totalCharge": total}
        with self._connect() as conn:
            conn.execute(
                """
                INSERT INTO payments (signature, payment_date, accepted_at, requested_at, total_charge,
                    tax_free_amount, vat, culture_expense_type, payment_method_type, is_canceled,
                    canceled_detected_at, order_id_from_client, purchasing_product_name, user_id,
                    client_generated_user_id, client_nickname, client_identification, first_seen_at,
                    last_seen_at, last_seen_active_at, first_seen_run_id, last_seen_run_id, record_hash, raw_record)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    signature, accepted_at.astimezone(KST).date(), accepted_at, accepted_at, total, supply, vat,
                    code, method, canceled_when_seen, seen_at if canceled_when_seen else None,
                    order_id or f"order-{signature}", product, f"user-{signature}", f"cuser-{signature}",
                    nickname, identification, seen_at, seen_at, None if canceled_when_seen else seen_at,
                    self.run_id, self.run_id, hashlib.md5(signature.encode()).hexdigest(), json.dumps(raw),
                ],
            )  # fmt: skip
            conn.execute(
                "INSERT INTO payment_events VALUES (?, ?, ?, 'first_seen', ?, NULL, NULL, NULL)",
                [signature, self.run_id, seen_at, canceled_when_seen],
            )

    def cancel(self, signature: str, detected_at: dt.datetime) -> None:
        """A later sync sees the payment cancelled."""
        with self._connect() as conn:
            active = conn.execute("SELECT last_seen_active_at FROM payments WHERE signature = ?", [signature]).fetchone()[0]
            conn.execute(
                """
                UPDATE payments SET is_canceled = true, canceled_detected_at = ?, last_seen_at = ?,
                    last_seen_run_id = ? WHERE signature = ?
                """,
                [detected_at, detected_at, self.run_id, signature],
            )
            conn.execute(
                "INSERT INTO payment_events VALUES (?, ?, ?, 'canceled', true, ?, ?, NULL)",
                [signature, self.run_id, detected_at, active, active],
            )

    def uncancel(self, signature: str, seen_at: dt.datetime) -> None:
        with self._connect() as conn:
            conn.execute(
                "UPDATE payments SET is_canceled = false, last_seen_active_at = ? WHERE signature = ?",
                [seen_at, signature],
            )
            conn.execute(
                "INSERT INTO payment_events VALUES (?, ?, ?, 'uncanceled', false, NULL, NULL, NULL)",
                [signature, self.run_id, seen_at],
            )

    def synced(self, first: dt.date, last: dt.date, *, finished_at: dt.datetime | None = None, complete: bool = True) -> None:
        """A sync run covering these KST days, finished (by default) the day after `last`."""
        finished_at = finished_at or kst(last.year, last.month, last.day, 3) + dt.timedelta(days=1)
        day = first
        with self._connect() as conn:
            while day <= last:
                start = kst(day.year, day.month, day.day)
                conn.execute(
                    "INSERT INTO sync_windows VALUES (?, ?, ?, ?, ?, ?, 1, 1, 0, 0, 0, 0, 0, 0, 0, ?, NULL)",
                    [self.run_id, day, start, start + dt.timedelta(days=1), finished_at, finished_at, complete],
                )
                day += dt.timedelta(days=1)
        self.run_id += 1

    def observation(self, at: dt.datetime, balance: int) -> None:
        with self._connect() as conn:
            conn.execute("INSERT INTO settlement_observations VALUES (?, ?)", [at, balance])

    def rejected(self, record_hash: str, day: dt.date, reason: str, raw_text: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO rejected_records VALUES (?, NULL, ?, ?, '/api/payments/date', ?, 1, 1, 1, now(), now(), 1)",
                [record_hash, reason, raw_text, day],
            )

    def refresh(self, businesses=()) -> Warehouse:
        if self._conn is not None:
            self._cm.__exit__(None, None, None)
            self._conn = None
        # the tax split as Warehouse.refresh_derived will build it once it is wired in
        self.warehouse.refresh_derived()
        with self.warehouse.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            refresh_tax_split(conn, list(businesses))
            conn.execute("COMMIT")
        return self.warehouse
