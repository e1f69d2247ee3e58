"""Running the sandbox: in a background thread (tests, demo) or as a CLI process.

The socket is bound before uvicorn starts so port 0 yields a known free port at once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from point3_pipeline.models import parse_api_datetime
from point3_pipeline.sandbox.app import create_app
from point3_pipeline.sandbox.config import DEFAULT_KEY, SandboxConfig
from point3_pipeline.sandbox.data import history_days
from point3_pipeline.sandbox.faults import Faults
from point3_pipeline.sandbox.merchants import SandboxMerchants, write_merchants_file
from point3_pipeline.sandbox.stall import DATE_PATH, StallMatch
from point3_pipeline.sandbox.state import SandboxState

STARTUP_TIMEOUT_SECONDS = 10
STOP_TIMEOUT_SECONDS = 10


class SandboxServer:
    """`with SandboxServer(cfg) as sb:` serves the sandbox on sb.url until the block ends."""

    def __init__(self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 merchants: int = 1):
        self.merchants = SandboxMerchants(config, merchants)
        self.state = self.merchants.first  # merchant 1: the whole sandbox when it serves one
        self._socket = socket.create_server((host, port))
        bound_host, bound_port = self._socket.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self._server = uvicorn.Server(uvicorn.Config(
            create_app(self.merchants), http="httptools", loop="auto", lifespan="off",
            access_log=False, log_level="warning",
            timeout_graceful_shutdown=STOP_TIMEOUT_SECONDS // 2,  # a dripping or held request cannot block stop()
        ))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="point3-sandbox", daemon=True)

    @property
    def key(self) -> str:
        return self.state.key

    @property
    def states(self) -> tuple[SandboxState, ...]:
        """Every merchant's state, merchant 1 first."""
        return self.merchants.states

    @property
    def keys(self) -> list[str]:
        """Every merchant's current key, merchant 1 first."""
        return [state.key for state in self.merchants.states]

    def write_merchants(self, folder: Path, *, root: str = "merchants") -> Path:
        """A merchants file for every merchant of this sandbox in `folder`, with their key and
        businesses files; history from the sandbox's first day. Returns the merchants file."""
        first_day = history_days(self.state.clock.now().date(), self.state.config.days, 0)[0]
        return write_merchants_file(folder, self.url, self.states, first_day, root=root)

    def stall(self, path: str = DATE_PATH, start_date: dt.datetime | dt.date | str | None = None,
              page: int | None = None, merchant: int | None = None) -> None:
        """Arm the stall gate: every matching API request from now on waits until `release()`.

        `start_date`: the request's startDate (a datetime, or the API's text), or a date for any
        startDate on that KST day; `page`: the request's page number; `merchant`: the number
        (1..N) of the merchant whose requests are held. None matches any.
        """
        self.state.stall_gate.arm(StallMatch(path, start_date, page, merchant))

    def wait_stalled(self, timeout: float = 30.0, at_least: int = 1) -> int:
        """Block until `at_least` requests are held; how many are. TimeoutError after `timeout` s."""
        held = self.state.stall_gate.wait_held(timeout, at_least)
        if held < at_least:
            raise TimeoutError(f"{held} request(s), not {at_least}, reached the armed stall gate within "
                               f"{timeout:g} s ({self.state.stall_gate.armed})")
        return held

    def release(self) -> int:
        """Let every held request go on and disarm the gate; how many were held."""
        return self.state.stall_gate.release()

    def inject(self, day: dt.date, raw: bytes, copies: int = 1) -> None:
        """Serve `copies` of `raw` verbatim at the head of the date pages of windows starting on
        `day` (KST); see SandboxState.inject_raw."""
        self.state.inject_raw(day, raw, copies)

    def clear_injected(self) -> None:
        """Remove every raw record `inject` added."""
        self.state.clear_injected_raw()

    def start(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:  # uvicorn sets it once listening
            if not self._thread.is_alive():
                raise RuntimeError("the sandbox server thread stopped during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox did not start within {STARTUP_TIMEOUT_SECONDS} s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.release()  # held requests would keep the server from shutting down
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8030, help="0 = any free port")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--days", type=int, default=90, help="days of history ending today")
    parser.add_argument("--per-day", type=int, default=40, help="average payments a day")
    parser.add_argument("--future-days", type=int, default=7, help="days of payments revealed as time passes")
    parser.add_argument("--key", default=DEFAULT_KEY, help="the merchant secret key to accept (merchant 1's)")
    parser.add_argument("--merchants", type=int, default=1,
                        help="how many merchants to serve, each with its own key and history (default 1)")
    parser.add_argument("--write-merchants", type=Path, metavar="DIR",
                        help="write DIR/merchants.toml (for POINT3_MERCHANTS) with each merchant's key and businesses file")
    parser.add_argument("--merchants-root", default="merchants", metavar="PATH",
                        help="the merchants file's root: the folder of their warehouses and reports, relative to DIR "
                             "(default %(default)s)")
    parser.add_argument("--start-at", help="the clock's initial now, yyyy-MM-ddTHH:mm:ss KST (default: real now)")
    parser.add_argument("--speed", type=float, default=1.0, help="sandbox seconds per real second")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--error-rate", type=float, default=0.0, help="share of API requests answered 500")
    faults.add_argument("--rate-limit-rate", type=float, default=0.0, help="share answered 429")
    faults.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds on 429")
    faults.add_argument("--latency-ms", type=int, default=0)
    faults.add_argument("--truncate-rate", type=float, default=0.0, help="share of 200 bodies cut short")
    faults.add_argument("--drift-per-page", type=int, default=0, help="new payments inserted per date page")
    faults.add_argument("--sort", choices=("asc", "desc"), default="asc", help="date endpoint order")
    faults.add_argument("--max-page-size", type=int, default=None, help="larger count -> 400")
    faults.add_argument("--end-exclusive", action="store_true", help="endDate exclusive (default inclusive)")
    faults.add_argument("--endless-pages", action="store_true", help="every date page is full of fresh junk")
    faults.add_argument("--cycle-pages", action="store_true", help="date pages alternate page 1, page 2, ...")
    faults.add_argument("--drip-bytes-per-second", type=int, default=0, help="send bodies this slowly (0 = off)")
    faults.add_argument("--garbage-body-bytes", type=int, default=0, help="date pages are this much non-JSON")
    parser.add_argument("--ready-file", type=Path, help="write {url, key, pid} JSON here once listening")


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    faults = Faults(
        error_rate=args.error_rate, rate_limit_rate=args.rate_limit_rate, retry_after_seconds=args.retry_after,
        latency_ms=args.latency_ms, truncate_rate=args.truncate_rate, drift_per_page=args.drift_per_page,
        sort_order=args.sort, max_page_size=args.max_page_size, end_inclusive=not args.end_exclusive,
        endless_pages=args.endless_pages, cycle_pages=args.cycle_pages,
        drip_bytes_per_second=args.drip_bytes_per_second, garbage_body_bytes=args.garbage_body_bytes,
    )
    start_at = parse_api_datetime(args.start_at) if args.start_at else None
    return SandboxConfig(seed=args.seed, days=args.days, per_day=args.per_day, future_days=args.future_days,
                         key=args.key, start_at=start_at, speed=args.speed, faults=faults)


def write_ready_file(path: Path, url: str, key: str, merchants: list[dict] | None = None) -> None:
    """Atomic: a waiting script sees no file or the whole file, never half of it. `merchants`:
    each merchant's id and key when the sandbox serves several."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    ready = {"url": url, "key": key, "pid": os.getpid()}
    if merchants:
        ready["merchants"] = merchants
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(ready, handle)
    os.replace(tmp, path)


def run_from_args(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        server = SandboxServer(config, host=args.host, port=args.port, merchants=args.merchants)
    except ValueError as exc:
        print(f"point3 sandbox: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"point3 sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    gc.freeze()  # the history is permanent: keep the collector from rescanning it while serving
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        several = len(server.states) > 1
        if args.write_merchants:
            try:
                path = server.write_merchants(args.write_merchants, root=args.merchants_root)
            except OSError as exc:
                print(f"point3 sandbox: cannot write the merchants file in {args.write_merchants}: "
                      f"{exc.strerror or exc}", file=sys.stderr)
                return 1
            print(f"merchants file for POINT3_MERCHANTS: {path}", flush=True)
        if args.ready_file:
            merchants = [{"id": s.profile.id, "key": s.key} for s in server.states] if several else None
            write_ready_file(args.ready_file, server.url, server.key, merchants)
        print(f"point3 sandbox listening on {server.url}  key: {server.key}", flush=True)
        if several:
            for state in server.states:
                print(f"  merchant {state.profile.number} ({state.profile.id}, {state.profile.name}): "
                      f"{server.url}  key: {state.key}", flush=True)
        stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m point3_pipeline.sandbox",
                                     description="Serve the point3 sandbox API.")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
