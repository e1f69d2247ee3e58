"""Benchmark: the tax workbooks against a bare openpyxl write-only dump of the same rows.

    .venv/bin/python bench/report.py [--cases 2025-11:100000 2025-Q4:300000]
    .venv/bin/python bench/report.py --reconciliation   # the reconciliation workbook, see reconciliation_bench

For each case (period:payments) a synthetic warehouse is built with INSERT ... SELECT FROM
range(n): the payments spread over the period, six businesses (clientNicknames), four payment
methods (one unknown to the pipeline), taxable, mixed, exempt and docs-shaped (unclassified)
figures, and one payment in twenty cancelled three days later (so some cancellations land in the
next month or quarter). The tax split is refreshed, then each case is rendered in a fresh
subprocess, so peak memory (ru_maxrss) is the case's own:

- dump: the workbook's detail rows (the same query, filing_detail.sql) appended to one
  write-only sheet with openpyxl and saved, nothing else;
- render: render_tax_report for the period (the whole workbook: summary, business sheets,
  daily, payment-month, detail, checks; versions and snapshot).

Floors for the quarterly workbook of 300,000 payments: within 1.5x the dump's time and under
400 MB peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR_RATIO, FLOOR_MB = 1.5, 400
MONTH = "2025-11"

SYNTHETIC = """
INSERT INTO payments
SELECT
    printf('sig%026d', i) AS signature,
    CAST(ts AS DATE) AS payment_date,
    timezone('Asia/Seoul', ts) AS accepted_at,
    timezone('Asia/Seoul', ts) AS requested_at,
    total,
    CASE WHEN i % 97 = 0 THEN 0 ELSE total - vat END,
    vat,
    CASE WHEN i % 50 = 0 THEN NULL ELSE ['a', 'b', 'c', 'd', 'f', 'g'][1 + i % 6] END,
    CASE WHEN i % 211 = 0 THEN 'POINT_PAY' ELSE ['CARD', 'CARD', 'EASY_PAY', 'BANK_TRANSFER'][1 + i % 4] END,
    i % 20 = 0,
    CASE WHEN i % 20 = 0 THEN timezone('Asia/Seoul', ts) + INTERVAL 3 DAY END,
    printf('order-%d', CASE WHEN i % 1000 = 1 THEN i - 1 ELSE i END), '공연 티켓 ' || (i % 97), printf('u%d', i % 5000),
    printf('cu%d', i % 5000), ['아트홀', '책방', '갤러리', '한빛', '문화공간', '바이올렛'][1 + i % 6], 'client-bench',
    now(), now(), now(), 1, 1, md5(CAST(i AS VARCHAR)), '{}'
FROM (
    SELECT i, ts, total,
           CASE WHEN i % 97 = 0 THEN 0                -- docs-shaped: vat 0, taxFreeAmount 0
                WHEN i % 7 = 0 THEN 0                 -- exempt
                WHEN i % 5 = 0 THEN total // 33       -- mixed
                ELSE total // 11 END AS vat
    FROM (
        SELECT i, CAST($first AS TIMESTAMP) + to_seconds(CAST(i * ($seconds // $n) AS BIGINT)) AS ts,
               1100 * (1 + i % 90) AS total
        FROM range($n) AS r(i)
    )
)
"""
# Cancellations seen happening three days after the payment (an hour after it, still active).
EVENTS = """
INSERT INTO payment_events
SELECT signature, 1, canceled_detected_at, 'canceled', true, accepted_at + INTERVAL 1 HOUR,
       accepted_at + INTERVAL 1 HOUR, NULL
FROM payments WHERE is_canceled
"""
SYNCED = """
INSERT INTO sync_windows
SELECT 1, d, timezone('Asia/Seoul', d), timezone('Asia/Seoul', d + INTERVAL 1 DAY), $done, $done,
       1, 1, 0, 0, 0, 0, 0, 0, 0, true, NULL
FROM range(CAST($first AS DATE), CAST($after AS DATE), INTERVAL 1 DAY) AS r(d)
"""


def build(path: Path, n: int, period_label: str = MONTH) -> None:
    import datetime as dt

    from point3_pipeline.models import KST
    from point3_pipeline.periods import Period
    from point3_pipeline.tax_split import refresh_tax_split
    from point3_pipeline.warehouse import Warehouse

    period = Period.parse(period_label)
    seconds = (period.end - period.start).total_seconds()
    done = dt.datetime.combine(period.last + dt.timedelta(days=5), dt.time(3), KST)
    warehouse = Warehouse(path)
    with warehouse.connect() as conn:
        conn.execute(SYNTHETIC, {"first": period.first, "seconds": int(seconds), "n": max(n, 1)})
        conn.execute(EVENTS)
        conn.execute(SYNCED, {"first": period.first, "after": period.last + dt.timedelta(days=5), "done": done})
    warehouse.refresh_derived()
    with warehouse.connect() as conn:
        conn.execute("BEGIN TRANSACTION")
        refresh_tax_split(conn, [])
        conn.execute("COMMIT")


def case_render(db: Path, out: Path, period: str = MONTH) -> None:
    import datetime as dt

    from point3_pipeline.models import KST
    from point3_pipeline.reports import render_tax_report
    from point3_pipeline.warehouse import Warehouse

    render_tax_report(Warehouse(db), period, out, now=dt.datetime(2026, 2, 1, 9, tzinfo=KST))


def case_dump(db: Path, out: Path, period: str = MONTH) -> None:
    from openpyxl import Workbook

    from point3_pipeline.periods import Period
    from point3_pipeline.reports import data
    from point3_pipeline.warehouse import Warehouse

    with Warehouse(db).connect() as conn:
        data.prepare_filing(conn, Period.parse(period))
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("rows")
        cursor = conn.execute(data.report_sql("filing_detail"))
        times = [i for i, d in enumerate(cursor.description) if "TIME ZONE" in str(d[1]).upper()]
        while batch := cursor.fetchmany(data.BATCH):
            for row in batch:
                row = list(row)
                for i in times:  # Excel has no time zones (the connection reads KST)
                    if row[i] is not None:
                        row[i] = row[i].replace(tzinfo=None)
                ws.append(row)
        out.mkdir(parents=True, exist_ok=True)
        wb.save(out / "dump.xlsx")


# The month's balance as point3 would have served it every 30 minutes (1,440 observations): each
# sale credited at its slot, each cancellation taken back at the slot of the read that saw it,
# less four weekly payouts (Wednesdays 00:00) of the balance at the Monday before, each with its
# bank deposit the same morning.
SLOT_OF = "time_bucket(INTERVAL 30 MINUTES, {t} - INTERVAL 1 MICROSECOND, 'Asia/Seoul') + INTERVAL 30 MINUTES"
BALANCE_MOVES = f"""
SELECT slot, CAST(sum(amount) AS BIGINT) FROM (
    SELECT {SLOT_OF.format(t='accepted_at')} AS slot, total_charge AS amount FROM payments
    UNION ALL
    SELECT {SLOT_OF.format(t='canceled_detected_at')}, -total_charge FROM payments WHERE is_canceled
) GROUP BY slot
"""
PAYOUT_DAYS = ("2025-11-05", "2025-11-12", "2025-11-19", "2025-11-26")


def add_balance_history(path: Path) -> None:
    import datetime as dt
    from itertools import accumulate

    from point3_pipeline.models import KST
    from point3_pipeline.warehouse import Warehouse

    warehouse = Warehouse(path)
    start = dt.datetime(2025, 11, 1, tzinfo=KST)
    slots = [start + dt.timedelta(minutes=30 * k) for k in range(30 * 48)]
    with warehouse.connect() as conn:
        moves = dict(conn.execute(BALANCE_MOVES).fetchall())
        net = dict(zip(slots, accumulate(moves.get(slot, 0) for slot in slots)))
        paid, rows, deposits = 0, [], []
        for slot in slots:
            day = slot.date().isoformat()
            if day in PAYOUT_DAYS and slot.hour == 0 and slot.minute == 0:
                due = net[slot - dt.timedelta(days=2)] - paid
                paid += due
                deposits.append([f"bench-{day}", slot.replace(hour=9), slot.date(), True, due, "타행이체",
                                 "포인트쓰리정산", None, None, 1, 1])  # fmt: skip
            rows.append([slot + dt.timedelta(minutes=2), net[slot] - paid])
        conn.executemany("INSERT INTO settlement_observations VALUES (?, ?)", rows)
        conn.execute("INSERT INTO reconciliation_imports VALUES (1, 'deposits', 'bench.csv', '', 'utf-8', now(), 4, 4, 0, 0, 0)")
        conn.executemany("INSERT INTO bank_deposits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", deposits)
    warehouse.refresh_derived()


def case_reconciliation(db: Path, out: Path, period: str = MONTH) -> None:
    from point3_pipeline.reports import render_reconciliation_report
    from point3_pipeline.warehouse import Warehouse

    result = render_reconciliation_report(Warehouse(db), period, out)
    t = result.totals
    assert t["unexplained"] == 0 and t["payout_count"] == t["payouts_matched"] == 4, t
    assert t["observation_count"] == 1_440, t


CASES = {"render": case_render, "dump": case_dump, "reconciliation": case_reconciliation}


def reconciliation_bench(n: int = 100_000) -> None:
    """The reconciliation workbook of a month with `n` payments, 1,440 observations and 4 payouts,
    against the tax workbook of the same month. Targets: faster than the tax workbook, under 300 MB."""
    print(f"{'payments':>9} {'obs.':>6} {'tax s':>8} {'tax MB':>8} {'recon s':>8} {'recon MB':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="point3-bench-") as tmp:
        db = Path(tmp) / "bench.duckdb"
        build(db, n)
        add_balance_history(db)
        tax = run_case("render", db, Path(tmp) / "tax")
        recon = run_case("reconciliation", db, Path(tmp) / "recon")
        print(f"{n:>9,} {1440:>6,} {tax['seconds']:>8.2f} {tax['peak_mb']:>8.0f} {recon['seconds']:>8.2f} "
              f"{recon['peak_mb']:>9.0f} {recon['seconds'] / tax['seconds']:>6.2f}", flush=True)


def child(case: str, db: Path, out: Path, period: str) -> None:
    started = time.perf_counter()
    CASES[case](db, out, period)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))


def run_case(case: str, db: Path, out: Path, period: str = MONTH) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", case, "--db", str(db), "--out", str(out), "--period", period],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["2025-11:100000", "2025-Q4:300000"], help="PERIOD:PAYMENTS")
    parser.add_argument("--child", choices=sorted(CASES))
    parser.add_argument("--reconciliation", action="store_true", help="the reconciliation workbook case instead")
    parser.add_argument("--db", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--period")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db, args.out, args.period)
        return
    if args.reconciliation:
        reconciliation_bench()
        return
    print(f"{'period':>8} {'payments':>9} {'dump s':>8} {'dump MB':>8} {'tax s':>8} {'tax MB':>8} {'ratio':>6} {'xlsx MB':>8}  floors")
    for case in args.cases:
        period, n = case.split(":")
        with tempfile.TemporaryDirectory(prefix="point3-bench-") as tmp:
            db = Path(tmp) / "bench.duckdb"
            build(db, int(n), period)
            dump = run_case("dump", db, Path(tmp) / "dump", period)
            tax = run_case("render", db, Path(tmp) / "reports", period)
            size = sum(p.stat().st_size for p in (Path(tmp) / "reports").rglob("*.xlsx")) / 2**20
            ratio = tax["seconds"] / dump["seconds"]
            verdict = "ok" if ratio <= FLOOR_RATIO and tax["peak_mb"] < FLOOR_MB else f"MISSED ({FLOOR_RATIO}x, {FLOOR_MB} MB)"
            print(
                f"{period:>8} {int(n):>9,} {dump['seconds']:>8.2f} {dump['peak_mb']:>8.0f} {tax['seconds']:>8.2f} "
                f"{tax['peak_mb']:>8.0f} {ratio:>6.2f} {size:>8.1f}  {verdict}",
                flush=True,
            )


if __name__ == "__main__":
    main()
