"""The sandbox in its own process, for tests and benchmarks that need it apart (its own CPU
time, a real kill of a client, a CLI under test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class SandboxDidNotStart(RuntimeError):
    """The sandbox process exited, or did not write its ready file in time."""


def spawn(options: list[str], ready_file: Path, *, timeout: float = 120.0,
          **popen: Any) -> tuple[subprocess.Popen, dict[str, Any]]:
    """Start `python -m point3_pipeline.sandbox OPTIONS --port 0` and wait until it is listening.

    Returns the process and its ready file's JSON (`url`, `key`, `pid`); the caller stops it.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "point3_pipeline.sandbox", "--port", "0", *options, "--ready-file", str(ready_file)],
        **popen,
    )
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if process.poll() is not None:
            raise SandboxDidNotStart(f"the sandbox exited with code {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            process.kill()
            raise SandboxDidNotStart(f"the sandbox was not ready within {timeout:.0f} s")
        time.sleep(0.05)
    return process, json.loads(ready_file.read_text())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
