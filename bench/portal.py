"""Benchmark: the reports portal (`point3 serve`): its list page and a 20 MB workbook download.

    .venv/bin/python bench/portal.py [--folder bench/out/portal] [--requests 400] [--clients 20] [--downloads 100]

The deployment is built once under --folder and reused while its `built` marker is there
(delete the folder to build it again: ~8 min on two shared cores): a merchants file of two merchants
and one person who may see both.

- `bench-list`: two years (2024-2025) of bench/report.py's synthetic payments (about 600 a
  month: six businesses, taxable, mixed, exempt, unclassified, cancellations). The library
  renders its tax workbooks (24 months, 8 quarters, 4 half-years, 2 years) and reconciliation
  workbooks (24 months); then a late payment lands in every month (a gap filled) and they are
  rendered again, each a new version, until 200 workbook files exist with their version
  records: real workbooks and real versions, as the pipeline leaves them.
- `bench-big`: one month (2025-11) of 180,000 payments: its tax workbook, about 20 MB.

Both warehouses are published (the portal reads the published copies). Then the portal runs in
its own process (uvicorn, `point3 serve` on a free loopback port in loopback demo mode), the
bench logs in through the form with httpx and prints: the list page's median and p95 latency
and requests/second, sequential and with --clients concurrent clients; the 20 MB workbook's
downloads/second and MB/s with --clients concurrent clients (each download read whole and the
first compared with the file); the portal process's peak RSS (VmHWM) and CPU seconds; and the
load average, since the client runs on the same machine.

Floor: the list page under 50 ms at the median with 200 report files (sequential).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

import report  # bench/report.py: the synthetic payments
from point3_pipeline.models import KST
from point3_pipeline.periods import HALF, MONTH, QUARTER, YEAR, Period
from point3_pipeline.reports import render_reconciliation_report, render_tax_report, write_index
from point3_pipeline.sandbox.process import cpu_seconds
from point3_pipeline.tax_split import refresh_tax_split
from point3_pipeline.warehouse import Warehouse

LIST, BIG = "bench-list", "bench-big"
REPORT_FILES = 200
FIRST, LAST = dt.date(2024, 1, 1), dt.date(2025, 12, 31)
PER_MONTH = 600
BIG_MONTH, BIG_PAYMENTS = "2025-11", 180_000
RENDERED_AT = dt.datetime(2026, 1, 10, 9, tzinfo=KST)  # every period over and synced: final workbooks
USER, PASSWORD = "bench", "bench password, long enough"
FLOOR_MS = 50
BOUND = 120  # seconds: the portal's start-up, at most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=Path(__file__).parent / "out" / "portal")
    parser.add_argument("--requests", type=int, default=400, help="list page requests per measurement")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--downloads", type=int, default=100, help="20 MB downloads in the concurrent measurement")
    args = parser.parse_args()
    folder = args.folder.resolve()
    if not (folder / "built").exists():
        build(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POINT3_")}
    env |= {"POINT3_MERCHANTS": str(folder / "merchants.toml"), "POINT3_PORTAL_DB": str(folder / "portal.db")}
    process, url = start_portal(env, folder)
    try:
        measure(process, url, folder, args)
    finally:
        process.terminate()
        process.wait(timeout=BOUND)


# --- the deployment -------------------------------------------------------------------------


def build(folder: Path) -> None:
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    write_merchants(folder)
    files = build_list_merchant(folder / LIST)
    print(f"built {LIST}: {files} workbook files in {time.monotonic() - started:.0f} s", flush=True)
    big = build_big_merchant(folder / BIG)
    print(f"built {BIG}: {big.name}, {big.stat().st_size / 1e6:.1f} MB in {time.monotonic() - started:.0f} s", flush=True)
    password = folder / "password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    env = {**os.environ, "POINT3_MERCHANTS": str(folder / "merchants.toml"), "POINT3_PORTAL_DB": str(folder / "portal.db")}
    subprocess.run([point3(), "users", "add", USER, "--merchant", LIST, "--merchant", BIG, "--password-file", password],
                   env=env, check=True)
    (folder / "built").touch()


def write_merchants(folder: Path) -> None:
    """Two merchants whose folders are under `folder`; their key files are never used (the
    portal reads no key), but the merchants file names one for each."""
    (folder / "keys").mkdir(exist_ok=True)
    lines = ['root = "."', ""]
    for merchant_id, name in ((LIST, "벤치 목록 극장"), (BIG, "벤치 대형 공연장")):
        key = folder / "keys" / f"{merchant_id}.key"
        key.write_text("sk_bench_unused\n")
        key.chmod(0o600)
        lines += ["[[merchant]]", f'id = "{merchant_id}"', f'name = "{name}"', f'key_file = "keys/{merchant_id}.key"',
                  f"start_date = {FIRST}", 'api_url = "http://127.0.0.1:9"', ""]
    (folder / "merchants.toml").write_text("\n".join(lines), encoding="utf-8")


def fill(warehouse: Warehouse, first: dt.date, last: dt.date, n: int) -> None:
    """bench/report.py's synthetic payments, `n` of them spread over first..last, every day synced."""
    start = dt.datetime.combine(first, dt.time(), KST)
    seconds = int((dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), KST) - start).total_seconds())
    done = dt.datetime.combine(last + dt.timedelta(days=5), dt.time(3), KST)
    with warehouse.connect() as conn:
        conn.execute(report.SYNTHETIC, {"first": first, "seconds": seconds, "n": n})
        conn.execute(report.EVENTS)
        conn.execute(report.SYNCED, {"first": first, "after": last + dt.timedelta(days=5), "done": done})
    refresh(warehouse)


def refresh(warehouse: Warehouse) -> None:
    warehouse.refresh_derived()
    with warehouse.connect() as conn:
        conn.execute("BEGIN TRANSACTION")
        refresh_tax_split(conn, [])
        conn.execute("COMMIT")


# A payment of every month found late (a gap filled): a copy of the month's first payment.
LATE_PAYMENTS = """
INSERT INTO payments
SELECT * REPLACE (printf('late%d-%s', $round, signature) AS signature, md5(printf('late%d-%s', $round, record_hash)) AS record_hash,
                  printf('late%d-%s', $round, order_id_from_client) AS order_id_from_client)
FROM payments
WHERE signature LIKE 'sig%'
QUALIFY row_number() OVER (PARTITION BY date_trunc('month', payment_date) ORDER BY signature) = 1
"""


def build_list_merchant(folder: Path) -> int:
    """Rounds of every period rendered, a late payment in every month between rounds, until
    REPORT_FILES workbooks are written; how many were."""
    warehouse = Warehouse(folder / "warehouse" / "point3.duckdb")
    fill(warehouse, FIRST, LAST, PER_MONTH * 24)
    reports_dir = folder / "reports"
    days = [FIRST + dt.timedelta(days=d) for d in range((LAST - FIRST).days + 1)]
    periods = sorted({(kind, Period.containing(kind, day).label) for kind in (MONTH, QUARTER, HALF, YEAR) for day in days})
    written, round_ = 0, 0
    while written < REPORT_FILES:
        if round_:
            with warehouse.connect() as conn:
                conn.execute(LATE_PAYMENTS, {"round": round_})
            refresh(warehouse)
        round_ += 1
        for kind, label in periods:
            for render in (render_tax_report, render_reconciliation_report) if kind == MONTH else (render_tax_report,):
                if written < REPORT_FILES:
                    written += render(warehouse, label, reports_dir, now=RENDERED_AT).created
    write_index(warehouse, reports_dir)
    warehouse.publish()
    return written


def build_big_merchant(folder: Path) -> Path:
    warehouse = Warehouse(folder / "warehouse" / "point3.duckdb")
    report.build(warehouse.path, BIG_PAYMENTS, BIG_MONTH)
    result = render_tax_report(warehouse, BIG_MONTH, folder / "reports", now=RENDERED_AT)
    warehouse.publish()
    return result.path


# --- the portal -----------------------------------------------------------------------------


def point3() -> str:
    return str(Path(sys.executable).with_name("point3"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_portal(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (folder / "serve.log").open("ab")
    process = subprocess.Popen([point3(), "serve", "--host", "127.0.0.1", "--port", str(port), "--insecure-loopback-demo"],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the portal exited with code {process.returncode}: see {folder / 'serve.log'}")
        try:
            if httpx.get(f"{url}/login", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the portal did not answer within {BOUND} s: see {folder / 'serve.log'}")


def login(client: httpx.Client) -> None:
    form = client.get("/login").raise_for_status().text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"', form)
    if token is None:
        raise SystemExit("the login page has no csrf_token field")
    answer = client.post("/login", data={"username": USER, "password": PASSWORD, "csrf_token": token[1] or token[2]})
    if answer.status_code != 303:
        raise SystemExit(f"login answered {answer.status_code}, not 303")


# --- the measurements -----------------------------------------------------------------------


def measure(process: subprocess.Popen, url: str, folder: Path, args: argparse.Namespace) -> None:
    big = next((folder / BIG / "reports").glob(f"{BIG_MONTH}/point3-tax-{BIG_MONTH}-v*.xlsx"))
    files = sum(1 for _ in (folder / LIST / "reports").glob("*/point3-*.xlsx"))
    with httpx.Client(base_url=url, timeout=60) as client:
        login(client)
        list_page = f"/m/{LIST}/"
        page = client.get(list_page).raise_for_status()
        if page.text.count(".xlsx") < 62:  # at least the latest of each period's kinds
            raise SystemExit(f"the list page links {page.text.count('.xlsx')} workbooks: is {LIST}'s page the list?")
        download = f"/m/{BIG}/files/{big.relative_to(folder / BIG / 'reports')}"
        first = client.get(download).raise_for_status().content
        if hashlib.sha256(first).digest() != hashlib.sha256(big.read_bytes()).digest():
            raise SystemExit("the downloaded workbook differs from the file")
        cookies = dict(client.cookies)
        load_before, bench_cpu = os.getloadavg(), time.process_time()
        for _ in range(20):  # warm-up
            client.get(list_page)
        sequential = with_cpu(process.pid, lambda: timed(lambda: client.get(list_page).raise_for_status(), args.requests))
    concurrent = with_cpu(process.pid, lambda: asyncio.run(concurrently(url, cookies, list_page, args.requests, args.clients)))
    downloads = with_cpu(process.pid, lambda: asyncio.run(concurrently(url, cookies, download, args.downloads, args.clients)))
    bench_cpu = time.process_time() - bench_cpu
    report_figures(files, big, sequential, concurrent, downloads, process.pid, args.clients)
    print(f"this client's CPU: {bench_cpu:.1f} s on the same machine; load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def with_cpu(pid: int, work):
    """What `work()` returns, and the CPU seconds the portal process spent meanwhile."""
    before = cpu_seconds(pid)
    return work(), cpu_seconds(pid) - before


def timed(request, count: int) -> tuple[list[float], float]:
    """Each request's seconds, and the wall time of them all."""
    latencies, started = [], time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        request()
        latencies.append(time.perf_counter() - began)
    return latencies, time.perf_counter() - started


async def concurrently(url: str, cookies: dict, path: str, count: int, clients: int) -> tuple[list[float], float, int]:
    """`count` GETs of `path` by `clients` concurrent clients, each body read whole: every
    request's seconds, the wall time and the bytes read."""
    latencies: list[float] = []
    received = 0
    queue = iter(range(count))

    async def one_client() -> None:
        nonlocal received
        async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=120) as client:
            for _ in queue:
                began = time.perf_counter()
                async with client.stream("GET", path) as answer:
                    answer.raise_for_status()
                    async for chunk in answer.aiter_raw():
                        received += len(chunk)
                latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies, time.perf_counter() - started, received


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def p95(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=20)[-1]


def report_figures(files: int, big: Path, sequential, concurrent, downloads, pid: int, clients: int) -> None:
    ((seq, seq_wall), seq_cpu), ((con, con_wall, _), con_cpu), ((dl, dl_wall, dl_bytes), dl_cpu) = \
        sequential, concurrent, downloads
    median = statistics.median(seq)
    verdict = "meets" if median * 1000 < FLOOR_MS else "MISSES"
    print(f"list page ({files} report files): sequential median {ms(median)}, p95 {ms(p95(seq))}, "
          f"{len(seq) / seq_wall:.0f} requests/s, portal CPU {ms(seq_cpu / len(seq))} a request; "
          f"{verdict} the floor (median < {FLOOR_MS} ms)")
    print(f"list page, {clients} concurrent clients: median {ms(statistics.median(con))}, p95 {ms(p95(con))}, "
          f"{len(con) / con_wall:.0f} requests/s, portal CPU {ms(con_cpu / len(con))} a request")
    print(f"download of {big.name} ({big.stat().st_size / 1e6:.1f} MB), {clients} concurrent clients: "
          f"{len(dl) / dl_wall:.1f} downloads/s, {dl_bytes / 1e6 / dl_wall:.0f} MB/s, median {ms(statistics.median(dl))}, "
          f"portal CPU {ms(dl_cpu / len(dl))} a download")
    print(f"portal peak RSS (VmHWM): {peak_rss_mb(pid):.0f} MB")


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 1024


if __name__ == "__main__":
    main()
