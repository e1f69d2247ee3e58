"""One observation of point3's settlement balance (point3 keeps no history of it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from point3_pipeline.sync.plan import Clock, kst_now
from point3_pipeline.sync.statements import sql


@dataclass(frozen=True)
class SettlementObservation:
    observed_at: dt.datetime
    balance: int
    change_since_previous: int | None


def observe_settlement(client, warehouse, *, clock: Clock = kst_now) -> SettlementObservation:
    """Take one observation of the settlement balance."""
    balance = client.settlement_balance()
    observed_at = clock()
    with warehouse.connect() as conn:
        previous = conn.execute(sql("settlement_previous"), {"observed_at": observed_at}).fetchone()
        conn.execute(sql("settlement_insert"), {"observed_at": observed_at, "balance": balance})
    return SettlementObservation(observed_at, balance, None if previous is None else balance - previous[0])
