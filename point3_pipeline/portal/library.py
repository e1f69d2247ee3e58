"""What the portal shows of a merchant: its workbook versions (from its published copy), its
businesses and its filing export CSVs (from its reports folder). Read only, never the main
warehouse: the published copy is replaced atomically by each publish, so it is opened
read-only and what it gave is kept until its file changes (inode, size or mtime), which keeps
the list pages from opening DuckDB on every request.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from point3_pipeline.export import filing_who
from point3_pipeline.merchants import Merchant, Merchants, load_merchants
from point3_pipeline.periods import Period
from point3_pipeline.reports.index import TOTAL_COLUMNS, Listed, listed_versions
from point3_pipeline.reports.versions import all_versions

# The filing export's names (export.py): filing_<YYYYMMDD>-<YYYYMMDD>_<사업자등록번호 or undeclared-hash>.csv
FILING_FILE = re.compile(r"^filing_\d{8}-\d{8}_(?P<who>[0-9A-Za-z-]+)\.csv$")
_BUSINESSES = """
    SELECT business_id, business_name, registration_number FROM business_declarations
    UNION SELECT business_id, business_name, registration_number FROM tax_filing_daily
    ORDER BY registration_number NULLS LAST, business_name
"""


@dataclass(frozen=True)
class Version:
    """One workbook version and what changed since the version before it."""

    listed: Listed
    change_summary: str

    @property
    def file_name(self) -> str:
        return self.listed.file_name


@dataclass(frozen=True)
class Business:
    name: str
    registration_number: str | None  # None: a clientNickname not declared in the businesses file
    who: str  # its part of a filing CSV's name


@dataclass(frozen=True)
class Shelf:
    """A merchant's published facts: every version (newest period first, newest version first
    within a kind and period), its businesses; `problem` says in Korean why there are none."""

    versions: tuple[Version, ...]
    businesses: tuple[Business, ...]
    problem: str | None = None

    def business_named_by(self, who: str) -> Business | None:
        """The business a filing CSV's name part (export.filing_who) stands for."""
        return next((b for b in self.businesses if b.who == who), None)

    def latest(self) -> list[Version]:
        """The newest version of each (period, kind)."""
        seen: set[tuple[Period, str]] = set()
        out = []
        for version in self.versions:
            key = (version.listed.period, version.listed.kind)
            if key not in seen:
                seen.add(key)
                out.append(version)
        return out

    def of(self, kind: str, period: Period) -> list[Version]:
        return [v for v in self.versions if v.listed.kind == kind and v.listed.period == period]


def change_summary(item: Listed, previous: Listed | None) -> str:
    """'첫 버전', or the changed records' count and how each total moved, in Korean."""
    if previous is None:
        return "첫 버전"
    moves = []
    for header, keys in TOTAL_COLUMNS:
        now, before = _total(item.totals, keys), _total(previous.totals, keys)
        if now is not None and before is not None and now != before:
            moves.append(f"{header} {now - before:+,}")
    return " · ".join([f"변경 {item.changes:,}건", *moves] if moves or item.changes else ["합계 변동 없음"])


def _total(totals: dict[str, int], keys: tuple[str, ...]) -> int | None:
    return next((totals[k] for k in keys if k in totals), None)


def _versions(items: list[Listed]) -> tuple[Version, ...]:
    """Each version with its summary against the version just older (items: newest first per kind)."""
    out = []
    for i, item in enumerate(items):
        older = items[i + 1] if i + 1 < len(items) else None
        same = older is not None and (older.kind, older.period) == (item.kind, item.period)
        out.append(Version(item, change_summary(item, older if same else None)))
    return tuple(out)


def read_shelf(published: Path) -> Shelf:
    """The versions and businesses recorded in a published copy."""
    if not published.exists():
        return Shelf((), (), "아직 게시된 데이터가 없습니다. 파이프라인이 이 가맹점의 첫 보고서를 만든 뒤에 보입니다.")
    try:
        with duckdb.connect(str(published), read_only=True) as conn:
            items = listed_versions(all_versions(conn))
            businesses = tuple(Business(name or "", number, filing_who(bid, name, number))
                               for bid, name, number in conn.execute(_BUSINESSES).fetchall())  # fmt: skip
    except duckdb.Error:
        return Shelf((), (), "게시된 데이터를 읽을 수 없습니다. 운영자에게 알려 주세요.")
    return Shelf(_versions(items), businesses)


def filing_files(reports_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """The filing export CSVs in each period's folder: period label -> [(file name relative to
    the reports folder, who: 사업자등록번호 or undeclared-…)], hidden files left out."""
    out: dict[str, list[tuple[str, str]]] = {}
    try:
        folders = [e for e in os.scandir(reports_dir) if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    except OSError:
        return out
    for folder in sorted(folders, key=lambda e: e.name, reverse=True):
        try:
            names = sorted(e.name for e in os.scandir(folder.path) if e.is_file(follow_symlinks=False))
        except OSError:
            continue
        found = [(f"{folder.name}/{n}", m["who"]) for n in names if (m := FILING_FILE.match(n))]
        if found:
            out[folder.name] = found
    return out


class Library:
    """The merchants (reloaded when the merchants file changes) and each one's shelf, cached by
    its published copy's file identity. Safe to share between the app's threads."""

    def __init__(self, env: Mapping[str, str]):
        self._env = dict(env)
        self._lock = threading.Lock()
        self._merchants: tuple[object, Merchants] | None = None
        self._shelves: dict[Path, tuple[object, Shelf]] = {}

    def merchants(self) -> Merchants:
        key = _identity(Path(self._env["POINT3_MERCHANTS"])) if self._env.get("POINT3_MERCHANTS", "").strip() else None
        with self._lock:
            if self._merchants is None or self._merchants[0] != key:
                self._merchants = (key, load_merchants(self._env, check_keys=False))
            return self._merchants[1]

    def merchant(self, merchant_id: str) -> Merchant | None:
        return next((m for m in self.merchants().merchants if m.id == merchant_id), None)

    def shelf(self, merchant: Merchant) -> Shelf:
        path = merchant.published_path
        key = _identity(path)
        with self._lock:
            cached = self._shelves.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
        shelf = read_shelf(path)
        with self._lock:
            self._shelves[path] = (key, shelf)
        return shelf


def _identity(path: Path) -> object:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_dev, stat.st_size, stat.st_mtime_ns)
