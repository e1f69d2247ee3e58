"""Settings from the environment: the same variable names for the CLI, Dagster and tests.

| variable                        | meaning                                                        |
|---------------------------------|----------------------------------------------------------------|
| POINT3_API_URL                  | base URL of the point3 API (or of the sandbox)                 |
| POINT3_SECRET_KEY               | the merchant secret key                                        |
| POINT3_SECRET_KEY_FILE          | or: a file holding the key (what `key rotate` writes)          |
| POINT3_WAREHOUSE                | the DuckDB file                                                |
| POINT3_REPORTS_DIR              | where workbooks are written                                    |
| POINT3_START_DATE               | first day of history, YYYY-MM-DD (KST), from 2000-01-01 to today |
| POINT3_BUSINESSES               | optional: the businesses file (TOML, see businesses.py); unset: every payment by the rule |
| POINT3_MAX_AMOUNT_WON           | optional: largest plausible payment; above it, quarantined     |
| POINT3_REQUEST_DEADLINE_SECONDS | optional: overall deadline of one HTTP request, body included  |
| POINT3_MAX_BODY_BYTES           | optional: largest response body read                           |
| POINT3_MAX_PAGES_PER_WINDOW     | optional: most pages read for one day window                   |
| POINT3_MAX_RECORDS_PER_WINDOW   | optional: most records read for one day window                 |
| POINT3_WINDOWS_READ_AT_ONCE     | optional: day windows a merchant's sync reads at once, 1 to 8 (default 2; one each among merchants at once) |
| POINT3_FEE_PERCENT              | optional: point3's fee, percent of each sale (e.g. 3.3; default 0) |
| POINT3_FEE_VAT                  | optional: yes if 10% VAT is charged on the fee (default no)    |
| POINT3_CREDIT_DELAY_DAYS        | optional: a sale raises the balance on day D+N (default 0: at once) |
| POINT3_DEPOSIT_MATCH_DAYS       | optional: days after a payout its bank deposit may arrive (default 3) |
| POINT3_UNEXPLAINED_THRESHOLD_WON | optional: unexplained balance change a check tolerates (default 0) |
| POINT3_PAYOUT_DEPOSIT_DAYS      | optional: days a payout may lack a deposit after an import (default 5) |
| POINT3_MERCHANTS                | optional: the merchants file (TOML, see merchants.py); unset: the variables above are the one merchant `default` |
| POINT3_MAX_PARALLEL_MERCHANTS   | optional: merchants run at once by `--all` and the fleet (default 4) |
| POINT3_PORTAL_URL               | optional: the reports portal's public address (https://reports.example.kr); Dagster's report metadata links there |

The optional bounds default to `limits.DEFAULT_LIMITS`. A missing or malformed setting raises
ConfigError with one sentence naming the variable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from .limits import DEFAULT_LIMITS, Limits
from .models import KST, MAX_AMOUNT

if TYPE_CHECKING:
    from .businesses import Business

log = logging.getLogger(__name__)

# point3 cannot have payments from before it existed: a first day earlier than this is a typo
# (1899 would plan 46,000 day windows and walk every one).
EARLIEST_DAY = dt.date(2000, 1, 1)

# What a merchant key may be: printable ASCII without spaces, so it is safe in a header.
KEY_SHAPE = re.compile(r"[\x21-\x7e]+")

# The optional bounds, each the Limits field of the same name.
LIMIT_VARS = {
    "POINT3_MAX_AMOUNT_WON": "max_amount_won",
    "POINT3_REQUEST_DEADLINE_SECONDS": "request_deadline_seconds",
    "POINT3_MAX_BODY_BYTES": "max_body_bytes",
    "POINT3_MAX_PAGES_PER_WINDOW": "max_pages_per_window",
    "POINT3_MAX_RECORDS_PER_WINDOW": "max_records_per_window",
    "POINT3_WINDOWS_READ_AT_ONCE": "windows_read_at_once",
}
# Bounds tighter than the warehouse's BIGINT: requests in flight at once stay polite.
LIMIT_MAXIMA = {"windows_read_at_once": 8}

ENV_VARS = (
    "POINT3_API_URL",
    "POINT3_SECRET_KEY",
    "POINT3_SECRET_KEY_FILE",
    "POINT3_WAREHOUSE",
    "POINT3_REPORTS_DIR",
    "POINT3_START_DATE",
    "POINT3_BUSINESSES",
    *LIMIT_VARS,
    "POINT3_FEE_PERCENT",
    "POINT3_FEE_VAT",
    "POINT3_CREDIT_DELAY_DAYS",
    "POINT3_DEPOSIT_MATCH_DAYS",
    "POINT3_UNEXPLAINED_THRESHOLD_WON",
    "POINT3_PAYOUT_DEPOSIT_DAYS",
    "POINT3_MERCHANTS",  # read by merchants.py
    "POINT3_MAX_PARALLEL_MERCHANTS",  # read by fleet.py
    "POINT3_PORTAL_URL",
)


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class SecretKey:
    """The merchant key. Its repr and str never show it; `reveal()` is the one way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretKey('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def kst_today() -> dt.date:
    return dt.datetime.now(KST).date()


def api_url(env: Mapping[str, str] = os.environ) -> str:
    value = _get(env, "POINT3_API_URL")
    if value is None:
        raise ConfigError("POINT3_API_URL is not set: give the point3 API base URL (for the sandbox, the URL `point3 sandbox` prints).")
    return check_api_url(value, "POINT3_API_URL")


def check_api_url(value: str, setting: str) -> str:
    """`value` without its trailing slash, or ConfigError naming `setting` (a variable, or a
    field of the merchants file)."""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"{setting} must be an http(s) URL such as http://127.0.0.1:8030, not {value!r}.")
    if any(c.isspace() for c in value):
        raise ConfigError(f"{setting} {value!r} contains a space: give the URL without one.")
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port == 0:
        given = parsed.netloc.rpartition(":")[2]
        raise ConfigError(f"{setting} {value!r} has the port {given!r}: a port is a number from 1 to 65535.")
    return value.rstrip("/")


def portal_url(env: Mapping[str, str] = os.environ) -> str | None:
    """The reports portal's public address without a trailing slash, or None when it is unset
    (then nothing links to the portal)."""
    value = _get(env, "POINT3_PORTAL_URL")
    return None if value is None else check_api_url(value, "POINT3_PORTAL_URL")


def key_problem(key: str) -> str | None:
    """What makes `key` unusable as a merchant key, in words that do not repeat it; None if usable."""
    if key.startswith("\ufeff"):
        return "starts with a byte-order mark (BOM): save it as plain UTF-8 without one"
    if any("\udc80" <= c <= "\udcff" for c in key):  # how os.environ carries bytes that are not UTF-8
        return "is not UTF-8 text"
    if "\n" in key or "\r" in key:
        return "has more than one line: it must hold the key alone"
    if any(c.isspace() for c in key):
        return "contains a space: the key has none"
    if not KEY_SHAPE.fullmatch(key):
        return "contains characters other than printable ASCII"
    return None


def secret_key(env: Mapping[str, str] = os.environ) -> SecretKey:
    value = _get(env, "POINT3_SECRET_KEY")
    if value is not None:
        problem = key_problem(value)
        if problem:
            raise ConfigError(f"POINT3_SECRET_KEY {problem}.")
        return SecretKey(value)
    path = _get(env, "POINT3_SECRET_KEY_FILE")
    if path is None:
        raise ConfigError("POINT3_SECRET_KEY is not set: set it, or set POINT3_SECRET_KEY_FILE to a file holding the merchant key.")
    return SecretKey(read_key_file(Path(path)))


def read_key_file(path: Path, setting: str = "POINT3_SECRET_KEY_FILE") -> str:
    """The key in the file at `path`; ConfigError naming `setting` (the variable, or a field of
    the merchants file) if it cannot be used, and a warning if others may read it."""
    try:
        data = path.read_bytes()
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"{setting} points to {path}, which cannot be read ({exc.strerror}).") from None
    try:
        key = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{setting} points to {path}, which is not UTF-8 text: it must hold the key alone.") from None
    if not key:
        raise ConfigError(f"{setting} points to {path}, which is empty.")
    problem = key_problem(key)
    if problem:
        raise ConfigError(f"{setting} points to {path}, which {problem}.")
    if mode & 0o077:
        log.warning("the key file %s can be read or changed by group or others (mode %03o): run chmod 600 %s", path, mode, path)
    return key


def key_file(env: Mapping[str, str] = os.environ) -> Path:
    """The file key rotation writes; it must be the key source in use, or the new key would be ignored."""
    path = _get(env, "POINT3_SECRET_KEY_FILE")
    if path is None:
        raise ConfigError("POINT3_SECRET_KEY_FILE is not set: key rotation writes the new key there, so it must name a file.")
    if _get(env, "POINT3_SECRET_KEY") is not None:
        raise ConfigError(
            "POINT3_SECRET_KEY is set, so it and not POINT3_SECRET_KEY_FILE holds the key in use and every later run "
            "would keep the dead key after a rotation: unset POINT3_SECRET_KEY (the key file is read instead) and run again."
        )
    return Path(path)


def folder_write_problem(folder: Path, *, create: bool) -> str | None:
    """Why files cannot be replaced atomically in `folder`, or None: proven by creating a temp
    file there (and the folder first, if `create`), renaming it onto a second one, removing both."""
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        first = tempfile.mkstemp(prefix=".point3-probe.", dir=folder)
        try:
            second = tempfile.mkstemp(prefix=".point3-probe.", dir=folder)
            os.close(second[0])
            os.replace(first[1], second[1])
            os.unlink(second[1])
        finally:
            os.close(first[0])
            if os.path.lexists(first[1]):
                os.unlink(first[1])
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def check_writable_folder(folder: Path, variable: str, *, create: bool) -> None:
    """ConfigError naming `variable` unless `folder_write_problem(folder)` finds nothing."""
    problem = folder_write_problem(folder, create=create)
    if problem:
        raise ConfigError(
            f"{variable}: files cannot be written in the folder {folder} ({problem}); make it writable or set {variable} to another place."
        )


def warehouse_path(env: Mapping[str, str] = os.environ) -> Path:
    value = _get(env, "POINT3_WAREHOUSE")
    if value is None:
        raise ConfigError("POINT3_WAREHOUSE is not set: give the path of the DuckDB warehouse file, e.g. warehouse/point3.duckdb.")
    path = Path(value)
    if path.is_dir():
        raise ConfigError(f"POINT3_WAREHOUSE must be a file path, but {value} is a directory.")
    return path


def writable_warehouse_path(env: Mapping[str, str] = os.environ) -> Path:
    """The warehouse file, checked to be writable, with its folder (DuckDB's WAL and the published copy go there)."""
    path = warehouse_path(env)
    check_writable_folder(path.parent, "POINT3_WAREHOUSE", create=True)
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"POINT3_WAREHOUSE: the warehouse file {path} is not writable; make it writable by this user.")
    return path


def reports_dir(env: Mapping[str, str] = os.environ) -> Path:
    value = _get(env, "POINT3_REPORTS_DIR")
    if value is None:
        raise ConfigError("POINT3_REPORTS_DIR is not set: give the folder where workbooks are written, e.g. reports.")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"POINT3_REPORTS_DIR must be a folder, but {value} is a file.")
    return path


def writable_reports_dir(env: Mapping[str, str] = os.environ) -> Path:
    path = reports_dir(env)
    check_writable_folder(path, "POINT3_REPORTS_DIR", create=True)
    return path


def start_date(env: Mapping[str, str] = os.environ, *, today: dt.date | None = None) -> dt.date:
    """The first day of history: from EARLIEST_DAY through today (KST)."""
    value = _get(env, "POINT3_START_DATE")
    if value is None:
        raise ConfigError("POINT3_START_DATE is not set: give the first day of history as YYYY-MM-DD.")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"POINT3_START_DATE must be a date as YYYY-MM-DD, not {value!r}.") from None
    return check_start_date(day, "POINT3_START_DATE", today=today)


def check_start_date(day: dt.date, setting: str, *, today: dt.date | None = None) -> dt.date:
    """`day` if it is from EARLIEST_DAY through today (KST), else ConfigError naming `setting`."""
    today = today or kst_today()
    if day < EARLIEST_DAY:
        raise ConfigError(f"{setting} {day} is before {EARLIEST_DAY}, earlier than point3 can have payments: give the merchant's first day of business.")
    if day > today:
        raise ConfigError(f"{setting} {day} is in the future (today is {today} KST): give the first day of history.")
    return day


def limits(env: Mapping[str, str] = os.environ) -> Limits:
    """The bounds on upstream data: each POINT3_MAX_* / deadline variable that is set, else its default."""
    chosen = {}
    for variable, name in LIMIT_VARS.items():
        value = _get(env, variable)
        if value is not None:
            chosen[name] = _limit_value(variable, value, type(getattr(DEFAULT_LIMITS, name)),
                                        LIMIT_MAXIMA.get(name, MAX_AMOUNT))
    return dataclasses.replace(DEFAULT_LIMITS, **chosen)


def _limit_value(variable: str, value: str, kind: type, largest: int) -> int | float:
    if kind is int:  # at most the warehouse's BIGINT, which bounds every amount stored
        if not re.fullmatch(r"[0-9]+", value) or not 1 <= int(value) <= largest:
            raise ConfigError(f"{variable} must be a whole number from 1 to {largest:,}, not {value!r} (unset it for the default).")
        return int(value)
    number = float(value) if re.fullmatch(r"[0-9]*\.?[0-9]+", value) else math.nan
    if not 0 < number < math.inf:
        raise ConfigError(f"{variable} must be a positive number of seconds, not {value!r} (unset it for the default).")
    return number


def businesses(env: Mapping[str, str] = os.environ) -> list[Business]:
    """The businesses declared in the POINT3_BUSINESSES file, validated (a ConfigError with one
    sentence per mistake), or none when it is unset: then every payment is split by the rule.
    The one reader of the variable; a Warehouse reads it once, at its first refresh."""
    from point3_pipeline.businesses import businesses_from_env  # it imports ConfigError from here

    return businesses_from_env(env)


# --- the reconciliation's settings --------------------------------------------------------------

_FEE_PERCENT = re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,4})?")
_DAY_COUNTS = {  # variable -> (Terms field, largest value)
    "POINT3_CREDIT_DELAY_DAYS": ("credit_delay_days", 60),
    "POINT3_DEPOSIT_MATCH_DAYS": ("match_days", 60),
    "POINT3_PAYOUT_DEPOSIT_DAYS": ("deposit_overdue_days", 365),
}


def fee_ppm(text: str) -> int | None:
    """A fee percent such as "3.3" or "2.75%" as parts per million (exact); None if it is not one."""
    if not _FEE_PERCENT.fullmatch(text.strip().removesuffix("%")):
        return None
    whole, _, decimals = text.strip().removesuffix("%").partition(".")
    return int(whole) * 10_000 + int(decimals.ljust(4, "0") or 0)


def reconciliation_terms(env: Mapping[str, str] = os.environ):
    """The declared fee (the merchant's, and any business's own in the businesses file), credit
    timing and tolerances of the reconciliation (rollforward.Terms)."""
    from .rollforward import Terms

    chosen: dict[str, object] = {}
    fee = _get(env, "POINT3_FEE_PERCENT")
    if fee is not None:
        chosen["fee_ppm"] = fee_ppm(fee)
        if chosen["fee_ppm"] is None:
            raise ConfigError(f"POINT3_FEE_PERCENT must be a percent from 0 to 99.9999 with at most 4 decimals, such as 3.3, not {fee!r}.")
    vat = _get(env, "POINT3_FEE_VAT")
    if vat is not None:
        if vat.lower() not in ("yes", "no", "true", "false", "1", "0"):
            raise ConfigError(f"POINT3_FEE_VAT must be yes or no, not {vat!r}.")
        chosen["fee_vat"] = vat.lower() in ("yes", "true", "1")
    for variable, (name, most) in _DAY_COUNTS.items():
        value = _get(env, variable)
        if value is not None:
            if not re.fullmatch(r"[0-9]+", value) or int(value) > most:
                raise ConfigError(f"{variable} must be a whole number of days from 0 to {most}, not {value!r}.")
            chosen[name] = int(value)
    threshold = _get(env, "POINT3_UNEXPLAINED_THRESHOLD_WON")
    if threshold is not None:
        if not re.fullmatch(r"[0-9]+", threshold.replace(",", "")) or int(threshold.replace(",", "")) > MAX_AMOUNT:
            raise ConfigError(f"POINT3_UNEXPLAINED_THRESHOLD_WON must be a whole number of won from 0, not {threshold!r}.")
        chosen["unexplained_threshold"] = int(threshold.replace(",", ""))
    terms = Terms(**chosen)
    return dataclasses.replace(terms, business_fees=_business_fees(env, terms))


def _business_fees(env: Mapping[str, str], terms) -> tuple:
    from .businesses import businesses_from_env
    from .rollforward import BusinessFee

    return tuple(
        BusinessFee(nickname, b.client_identification, terms.fee_ppm if b.fee_ppm is None else b.fee_ppm,
                    terms.fee_vat if b.fee_vat is None else b.fee_vat)
        for b in businesses_from_env(env) if b.fee_ppm is not None or b.fee_vat is not None
        for nickname in b.client_nicknames
    )
