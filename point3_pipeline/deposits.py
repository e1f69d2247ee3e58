"""The merchant's bank deposits: importing a bank's 거래내역 CSV and matching deposits to payouts.

The columns of a Korean bank's export are the guide: 거래일시 (or 거래일자, with or without a
거래시간), 적요, 출금액, 입금액, 잔액, 내용 (or 메모), 거래점; only a date column and 입금액 are
required, lines above the header (account number, period) are skipped. Withdrawals are
skipped (counted); every other line must hold a valid date and amount or nothing is imported.

A deposit is identified by its content, not by its place in a file: date, time, amount, 적요,
내용, 거래점 and the account's running balance after it. Two identical deposits on one day (same
amount, no time) differ by that running balance; where the file has no balance column either,
the n-th identical line of the file is the n-th deposit. So re-importing the same file, or an
export overlapping an earlier one (bank exports cover whole days), adds nothing twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb

from point3_pipeline.imports import (
    ImportRefused,
    ImportResult,
    csv_rows,
    parse_amount,
    read_text,
    record_import,
    refuse_if,
)
from point3_pipeline.models import KST
from point3_pipeline.rollforward import Payout
from point3_pipeline.warehouse import Warehouse

HEADER_SEARCH_LINES = 30
DATE_COLUMNS = ("거래일시", "거래일자")
COLUMNS = {  # field -> the header names a bank uses for it
    "time": ("거래시간", "거래시각"),
    "summary": ("적요", "거래구분"),
    "withdrawal": ("출금액", "찾으신금액", "출금"),
    "deposit": ("입금액", "맡기신금액", "입금"),
    "balance": ("잔액", "거래후잔액"),
    "memo": ("내용", "메모", "기재내용", "받는분/보낸분"),
    "branch": ("거래점", "취급점"),
}
# A payout and a deposit of different amounts are paired only this close (a bank's transfer
# fee, a correction); farther apart, each is listed alone.
DIFFERENCE_SHARE = (1, 20)


@dataclass(frozen=True)
class Deposit:
    key: str
    deposited_at: dt.datetime
    deposit_date: dt.date
    time_known: bool
    amount: int
    summary: str
    memo: str
    branch: str
    account_balance: int | None
    line_number: int = 0  # in the file it came from


def _parse_when(date_text: str, time_text: str) -> tuple[dt.datetime | None, bool]:
    """(KST time, whether the time of day was given) from a bank's date (and time) text."""
    text = f"{date_text} {time_text}".strip().replace(".", "-").replace("/", "-")
    for fmt, has_time in (("%Y-%m-%d %H:%M:%S", True), ("%Y-%m-%d %H:%M", True), ("%Y-%m-%d", False),
                          ("%Y%m%d %H%M%S", True), ("%Y%m%d", False)):  # fmt: skip
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=KST), has_time
        except ValueError:
            continue
    return None, False


def _header(rows: list[list[str]], path: Path) -> tuple[int, dict[str, int]]:
    for n, row in enumerate(rows[:HEADER_SEARCH_LINES]):
        names = [c.replace(" ", "") for c in row]
        date_col = next((names.index(c) for c in DATE_COLUMNS if c in names), None)
        deposit_col = next((names.index(c) for c in COLUMNS["deposit"] if c in names), None)
        if date_col is None or deposit_col is None:
            continue
        found = {"date": date_col}
        for name, options in COLUMNS.items():
            col = next((names.index(c) for c in options if c in names), None)
            if col is not None:
                found[name] = col
        return n, found
    raise ImportRefused(f"{path}: no header line with 거래일시 (or 거래일자) and 입금액 in its first {HEADER_SEARCH_LINES} lines; "
                        "export the account's 거래내역 as CSV.")


def parse_bank_file(path: Path, text: str) -> tuple[list[Deposit], int, int]:
    """(deposits, data lines, withdrawals skipped); ImportRefused naming every bad line."""
    rows = csv_rows(text)
    start, cols = _header(rows, path)
    problems: list[str] = []
    parsed: list[tuple[tuple, int]] = []
    lines = skipped = 0

    def cell(row: list[str], name: str) -> str:
        col = cols.get(name)
        return row[col] if col is not None and col < len(row) else ""

    for number, row in enumerate(rows[start + 1:], start=start + 2):
        if not any(row):
            continue
        lines += 1
        line_problems = []
        when, time_known = _parse_when(cell(row, "date"), cell(row, "time"))
        if when is None:
            line_problems.append(f"거래일시 {cell(row, 'date')[:30]!r} is not a date such as 2026.03.04 09:00:00")
        amounts = {}
        for name, label in (("deposit", "입금액"), ("withdrawal", "출금액"), ("balance", "잔액")):
            value, why = parse_amount(cell(row, name), label, signed=name == "balance")
            amounts[name] = value
            if why:
                line_problems.append(why)
        if not line_problems and amounts["deposit"] and amounts["withdrawal"]:
            line_problems.append("both 입금액 and 출금액 are filled in: one line is one transaction")
        if line_problems:
            problems.append(f"line {number}: " + "; ".join(line_problems))
            continue
        if not amounts["deposit"]:
            skipped += 1  # a withdrawal, or a line that moves no money in
            continue
        balance = amounts["balance"] if cell(row, "balance") else None
        content = (when, time_known, amounts["deposit"], cell(row, "summary"), cell(row, "memo"), cell(row, "branch"), balance)
        parsed.append((content, number))
    refuse_if(problems, path)
    return _identified(parsed), lines, skipped


def _identified(parsed: list[tuple[tuple, int]]) -> list[Deposit]:
    seen: Counter = Counter()
    out = []
    for content, number in parsed:
        seen[content] += 1
        when, time_known, amount, summary, memo, branch, balance = content
        identity = "|".join(str(v) for v in (when.isoformat(), time_known, amount, summary, memo, branch, balance, seen[content]))
        out.append(Deposit(hashlib.sha256(identity.encode()).hexdigest(), when, when.date(), time_known, amount,
                           summary, memo, branch, balance, number))
    return out


def import_deposits(warehouse: Warehouse, path: Path, *, now: dt.datetime | None = None) -> ImportResult:
    """Store the deposits of a bank CSV; those already stored are counted, not added again."""
    now = now or dt.datetime.now(KST)
    path = Path(path)
    text, encoding, digest = read_text(path)
    deposits, lines, skipped = parse_bank_file(path, text)
    result = ImportResult("deposits", path, encoding, lines, skipped=skipped)
    with warehouse.connect() as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            keys = [d.key for d in deposits]
            known = {k for (k,) in conn.execute(
                "SELECT deposit_key FROM bank_deposits WHERE deposit_key IN (SELECT unnest(?::VARCHAR[]))", [keys]
            ).fetchall()} if keys else set()
            new = [d for d in deposits if d.key not in known]
            result.added, result.duplicates = len(new), len(deposits) - len(new)
            result.import_id = record_import(conn, result, digest, now)
            if new:
                conn.executemany(
                    "INSERT INTO bank_deposits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[d.key, d.deposited_at, d.deposit_date, d.time_known, d.amount, d.summary or None, d.memo or None,
                      d.branch or None, d.account_balance, result.import_id, d.line_number] for d in new],
                )  # fmt: skip
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return result


def load_deposits(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> list[Deposit]:
    rows = conn.execute(
        """
        SELECT deposit_key, deposited_at, deposit_date, time_known, amount, coalesce(summary, ''), coalesce(memo, ''),
               coalesce(branch, ''), account_balance, line_number
        FROM bank_deposits WHERE deposit_date BETWEEN ? AND ? ORDER BY deposited_at, deposit_key
        """,
        [first, last],
    ).fetchall()
    return [Deposit(*row) for row in rows]


def latest_import(conn: duckdb.DuckDBPyConnection) -> dt.datetime | None:
    return conn.execute("SELECT max(imported_at) FROM reconciliation_imports WHERE kind = 'deposits'").fetchone()[0]


@dataclass(frozen=True)
class Match:
    payout: Payout | None
    deposit: Deposit | None

    @property
    def difference(self) -> int | None:
        """The deposit less the payout, when both are there."""
        if self.payout is None or self.deposit is None:
            return None
        return self.deposit.amount - self.payout.amount


def _in_window(p: Payout, d: Deposit, days: int) -> bool:
    """Not before the payout could have left the balance, and within `days` days after it did."""
    not_before = d.deposited_at > p.after if d.time_known else d.deposit_date >= p.after.astimezone(KST).date()
    return not_before and d.deposit_date <= p.by.astimezone(KST).date() + dt.timedelta(days=days)


def match(payouts: list[Payout], deposits: list[Deposit], window_days: int) -> list[Match]:
    """Pairs of a payout and its deposit (equal amounts first, then the nearest close amount
    within the window), then the payouts and the deposits left alone; each in time order."""
    free = list(deposits)
    paired: dict[int, Deposit] = {}
    for n, p in enumerate(payouts):
        d = next((d for d in free if d.amount == p.amount and _in_window(p, d, window_days)), None)
        if d is not None:
            paired[n] = d
            free.remove(d)
    for n, p in enumerate(payouts):
        if n in paired:
            continue
        near = [d for d in free if _in_window(p, d, window_days)
                and abs(d.amount - p.amount) * DIFFERENCE_SHARE[1] <= p.amount * DIFFERENCE_SHARE[0]]
        if near:
            d = min(near, key=lambda d: (abs(d.amount - p.amount), d.deposited_at))
            paired[n] = d
            free.remove(d)
    return [Match(p, paired.get(n)) for n, p in enumerate(payouts)] + [Match(None, d) for d in free]
