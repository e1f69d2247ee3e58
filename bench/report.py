"""Benchmark: the monthly tax workbook against a bare openpyxl write-only dump of the same rows.

    .venv/bin/python bench/report.py [--sizes 10000 100000 300000]
    .venv/bin/python bench/report.py --reconciliation   # the reconciliation workbook, see reconciliation_bench

For each size a synthetic warehouse (one month, built with one INSERT ... SELECT FROM range(n))
is rendered in a fresh subprocess per case, so peak memory (ru_maxrss) is the case's own.
Target: the tax workbook within 1.5x the bare dump's time and under 300 MB peak.
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

MONTH = "2025-11"

SYNTHETIC = """
INSERT INTO payments
SELECT
    printf('sig%026d', i) AS signature,
    CAST(ts AS DATE) AS payment_date,
    timezone('Asia/Seoul', ts) AS accepted_at,
    timezone('Asia/Seoul', ts) AS requested_at,
    total, total - total // 11, total // 11,
    CASE WHEN i % 50 = 0 THEN NULL ELSE ['a', 'b', 'c', 'd', 'f', 'g'][1 + i % 6] END,
    'CARD', i % 20 = 0,
    CASE WHEN i % 20 = 0 THEN timezone('Asia/Seoul', ts) + INTERVAL 1 HOUR END,
    printf('order-%d', CASE WHEN i % 1000 = 1 THEN i - 1 ELSE i END), '공연 티켓 ' || (i % 97), printf('u%d', i % 5000), printf('cu%d', i % 5000),
    '벤치 극장', 'client-bench', now(), now(), now(), 1, 1, md5(CAST(i AS VARCHAR)), '{}'
FROM (
    SELECT i, TIMESTAMP '2025-11-01' + to_seconds(CAST(i * (30 * 86400 // ?) AS BIGINT)) AS ts,
           1100 * (1 + i % 90) AS total
    FROM range(?) AS r(i)
)
"""

DUMP_SQL = """
    SELECT timezone('Asia/Seoul', accepted_at), payment_date, signature, order_id_from_client,
           purchasing_product_name, culture_expense_type, payment_method_type, total_charge,
           tax_free_amount, vat, is_canceled, timezone('Asia/Seoul', canceled_detected_at)
    FROM payments WHERE payment_date BETWEEN DATE '2025-11-01' AND DATE '2025-11-30'
    ORDER BY payment_date, accepted_at, signature
"""


def build(path: Path, n: int) -> None:
    from point3_pipeline.warehouse import Warehouse

    warehouse = Warehouse(path)
    with warehouse.connect() as conn:
        conn.execute(SYNTHETIC, [max(n, 1), n])
        conn.execute(
            """
            INSERT INTO sync_windows
            SELECT 1, d, timezone('Asia/Seoul', d), timezone('Asia/Seoul', d + INTERVAL 1 DAY),
                   TIMESTAMPTZ '2025-12-01 03:00:00+09', TIMESTAMPTZ '2025-12-01 03:00:00+09',
                   1, 1, 0, 0, 0, 0, 0, 0, 0, true, NULL
            FROM range(DATE '2025-11-01', DATE '2025-12-01', INTERVAL 1 DAY) AS r(d)
            """
        )
    warehouse.refresh_derived()


def case_render(db: Path, out: Path) -> None:
    from point3_pipeline.reports import render_tax_report
    from point3_pipeline.warehouse import Warehouse

    render_tax_report(Warehouse(db), MONTH, out)


def case_dump(db: Path, out: Path) -> None:
    import duckdb
    from openpyxl import Workbook

    conn = duckdb.connect(str(db), read_only=True)
    conn.execute("SET TimeZone = 'Asia/Seoul'")
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("rows")
    cursor = conn.execute(DUMP_SQL)
    while batch := cursor.fetchmany(5000):
        for row in batch:
            ws.append(row)
    out.mkdir(parents=True, exist_ok=True)
    wb.save(out / "dump.xlsx")
    conn.close()


# The month's balance as point3 would have served it every 30 minutes (1,440 observations),
# less four weekly payouts (Wednesdays 00:00) of everything in by the Monday before, each with
# its bank deposit the same morning.
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
        sums = dict(conn.execute(
            """
            SELECT time_bucket(INTERVAL 30 MINUTES, accepted_at - INTERVAL 1 MICROSECOND, 'Asia/Seoul') + INTERVAL 30 MINUTES,
                   CAST(sum(total_charge) AS BIGINT)
            FROM payments GROUP BY 1
            """
        ).fetchall())
        credited = dict(zip(slots, accumulate(sums.get(slot, 0) for slot in slots)))
        paid, rows, deposits = 0, [], []
        for slot in slots:
            day = slot.date().isoformat()
            if day in PAYOUT_DAYS and slot.hour == 0 and slot.minute == 0:
                due = credited[slot - dt.timedelta(days=2)] - paid
                paid += due
                deposits.append([f"bench-{day}", slot.replace(hour=9), slot.date(), True, due, "타행이체",
                                 "포인트쓰리정산", None, None, 1, 1])  # fmt: skip
            rows.append([slot + dt.timedelta(minutes=2), credited[slot] - paid])
        conn.executemany("INSERT INTO settlement_observations VALUES (?, ?)", rows)
        conn.execute("INSERT INTO reconciliation_imports VALUES (1, 'deposits', 'bench.csv', '', 'utf-8', now(), 4, 4, 0, 0, 0)")
        conn.executemany("INSERT INTO bank_deposits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", deposits)
    warehouse.refresh_derived()


def case_reconciliation(db: Path, out: Path) -> None:
    from point3_pipeline.reports import render_reconciliation_report
    from point3_pipeline.warehouse import Warehouse

    result = render_reconciliation_report(Warehouse(db), MONTH, out)
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


def child(case: str, db: Path, out: Path) -> None:
    started = time.perf_counter()
    CASES[case](db, out)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))


def run_case(case: str, db: Path, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", case, "--db", str(db), "--out", str(out)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--child", choices=sorted(CASES))
    parser.add_argument("--reconciliation", action="store_true", help="the reconciliation workbook case instead")
    parser.add_argument("--db", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db, args.out)
        return
    if args.reconciliation:
        reconciliation_bench()
        return
    print(f"{'payments':>9} {'dump s':>8} {'dump MB':>8} {'tax s':>8} {'tax MB':>8} {'ratio':>6} {'xlsx MB':>8}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="point3-bench-") as tmp:
            db = Path(tmp) / "bench.duckdb"
            build(db, n)
            dump = run_case("dump", db, Path(tmp) / "dump")
            tax = run_case("render", db, Path(tmp) / "reports")
            size = sum(p.stat().st_size for p in (Path(tmp) / "reports").rglob("*.xlsx")) / 2**20
            print(
                f"{n:>9,} {dump['seconds']:>8.2f} {dump['peak_mb']:>8.0f} {tax['seconds']:>8.2f} "
                f"{tax['peak_mb']:>8.0f} {tax['seconds'] / dump['seconds']:>6.2f} {size:>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
