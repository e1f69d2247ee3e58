"""Benchmark: the monthly tax workbook against a bare openpyxl write-only dump of the same rows.

    .venv/bin/python bench/report.py [--sizes 10000 100000 300000]

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


def child(case: str, db: Path, out: Path) -> None:
    started = time.perf_counter()
    (case_render if case == "render" else case_dump)(db, out)
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
    parser.add_argument("--child", choices=["render", "dump"])
    parser.add_argument("--db", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db, args.out)
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
