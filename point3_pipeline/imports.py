"""Files a person brings to the reconciliation: reading them, and the balance observations made
before the pipeline ran (`point3 settlement import FILE.csv`).

A file is read whole and every line checked before anything is stored: one bad line refuses
the file with one sentence per bad line, and the warehouse stays as it was. Each import is
recorded in reconciliation_imports with what it added, skipped and refused.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from point3_pipeline.models import KST, MAX_AMOUNT
from point3_pipeline.warehouse import Warehouse

MAX_IMPORT_BYTES = 50 * 2**20
MAX_LISTED_PROBLEMS = 20
_AMOUNT = re.compile(r"-?[0-9]{1,3}(?:,[0-9]{3})+|-?[0-9]+")


class ImportRefused(Exception):
    """The file was not imported; the message says why, one sentence per bad line."""


@dataclass
class ImportResult:
    kind: str
    path: Path
    encoding: str
    data_lines: int
    added: int = 0
    duplicates: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)
    import_id: int | None = None


def read_text(path: Path) -> tuple[str, str, str]:
    """(text, encoding, sha256) of a CSV file: UTF-8 with or without a BOM, or CP949."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise ImportRefused(f"{path} is larger than {MAX_IMPORT_BYTES // 2**20} MB: split it by period and import each part.")
        data = path.read_bytes()
    except OSError as exc:
        raise ImportRefused(f"{path} cannot be read ({exc.strerror or exc}).") from None
    digest = hashlib.sha256(data).hexdigest()
    for encoding in ("utf-8-sig", "cp949"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            break
        return text, ("utf-8" if encoding == "utf-8-sig" and not data.startswith(b"\xef\xbb\xbf") else encoding), digest
    raise ImportRefused(f"{path} is neither UTF-8 nor CP949 text: save it from the bank's site or a spreadsheet as CSV.")


def csv_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in row] for row in csv.reader(text.splitlines())]


def parse_amount(text: str, column: str, *, signed: bool = False) -> tuple[int | None, str | None]:
    """(won, None) or (None, why not): digits with optional thousands commas and a trailing 원."""
    cleaned = text.replace(" ", "").removesuffix("원")
    if cleaned == "":
        return 0, None
    if not _AMOUNT.fullmatch(cleaned) or (cleaned.startswith("-") and not signed):
        return None, f"{column} {text[:30]!r} is not a whole number of won"
    value = int(cleaned.replace(",", ""))
    if abs(value) > MAX_AMOUNT:
        return None, f"{column} {text[:30]!r} is beyond the largest amount the warehouse holds"
    return value, None


def refuse_if(problems: list[str], path: Path) -> None:
    if not problems:
        return
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    tail = f"\n... and {more} more bad line(s)" if more else ""
    raise ImportRefused(f"{path}: nothing was imported, {len(problems)} line(s) must be fixed first:\n"
                        + "\n".join(shown) + tail)


def record_import(conn: duckdb.DuckDBPyConnection, result: ImportResult, digest: str, now: dt.datetime) -> int:
    return conn.execute(
        """
        INSERT INTO reconciliation_imports (kind, file_name, file_sha256, encoding, imported_at, data_lines,
                                            added, duplicates, conflicts, skipped)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING import_id
        """,
        [result.kind, result.path.name, digest, result.encoding, now, result.data_lines, result.added,
         result.duplicates, len(result.conflicts), result.skipped],
    ).fetchone()[0]


# --- balance observations -----------------------------------------------------------------------

BALANCE_COLUMNS = ("observed_at", "balance")


def parse_instant(text: str) -> dt.datetime | None:
    """An ISO 8601 time; without a zone it is KST. None if it is not one."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("/", "-").replace(".", "-", 2) if "T" not in text else text)
    except ValueError:
        return None
    return moment.replace(tzinfo=KST) if moment.tzinfo is None else moment


def parse_balance_file(path: Path, text: str, now: dt.datetime) -> tuple[list[tuple[dt.datetime, int, int]], int]:
    """((observed_at, balance, line number) of each line, data line count); ImportRefused
    naming every bad line."""
    rows = csv_rows(text)
    header = [c.lower() for c in rows[0]] if rows else []
    missing = [c for c in BALANCE_COLUMNS if c not in header]
    if missing:
        raise ImportRefused(f"{path}: the first line must name the columns observed_at,balance (missing {', '.join(missing)}).")
    at_col, balance_col = header.index("observed_at"), header.index("balance")
    problems, parsed, lines = [], [], 0
    for number, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        lines += 1
        if len(row) != len(header):
            problems.append(f"line {number}: has {len(row)} fields, the header {len(header)}")
            continue
        moment = parse_instant(row[at_col])
        balance, why = parse_amount(row[balance_col], "balance", signed=True)
        if moment is None:
            problems.append(f"line {number}: observed_at {row[at_col][:40]!r} is not a time such as 2026-03-01T09:30:00+09:00")
        elif moment > now:
            problems.append(f"line {number}: observed_at {row[at_col][:40]} is in the future")
        if why:
            problems.append(f"line {number}: {why}")
        if moment is not None and moment <= now and why is None:
            parsed.append((moment, balance, number))
    refuse_if(problems, path)
    return parsed, lines


def import_balances(warehouse: Warehouse, path: Path, *, now: dt.datetime | None = None) -> ImportResult:
    """Store balance observations from a CSV (observed_at,balance): a line that repeats a
    stored observation is skipped, one that contradicts it (same instant, another balance) is
    reported and not stored; the rest are added, marked imported."""
    now = now or dt.datetime.now(KST)
    path = Path(path)
    text, encoding, digest = read_text(path)
    parsed, lines = parse_balance_file(path, text, now)
    result = ImportResult("settlement", path, encoding, lines)
    with warehouse.connect() as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            stored = _stored_balances(conn, [m for m, _, _ in parsed])
            fresh: dict[dt.datetime, tuple[int, int]] = {}
            for moment, balance, number in parsed:
                known = stored.get(moment, fresh.get(moment, (None,))[0])
                if known is None:
                    fresh[moment] = (balance, number)
                elif known == balance:
                    result.duplicates += 1
                else:
                    result.conflicts.append(f"line {number}: {moment.astimezone(KST):%Y-%m-%d %H:%M:%S} KST balance "
                                            f"{balance:,} conflicts with the stored {known:,}; not stored")
            result.added = len(fresh)
            result.import_id = record_import(conn, result, digest, now)
            if fresh:
                conn.executemany(
                    "INSERT INTO imported_settlement_observations VALUES (?, ?, ?, ?)",
                    [[moment, balance, result.import_id, number] for moment, (balance, number) in fresh.items()],
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    warehouse.refresh_derived("settlement_balance_history")
    return result


def _stored_balances(conn: duckdb.DuckDBPyConnection, moments: list[dt.datetime]) -> dict[dt.datetime, int]:
    if not moments:
        return {}
    rows = conn.execute(
        """
        SELECT observed_at, balance FROM settlement_observations WHERE observed_at IN (SELECT unnest(?::TIMESTAMPTZ[]))
        UNION ALL
        SELECT observed_at, balance FROM imported_settlement_observations
        WHERE observed_at IN (SELECT unnest(?::TIMESTAMPTZ[]))
        """,
        [moments, moments],
    ).fetchall()
    return {moment: balance for moment, balance in rows}
