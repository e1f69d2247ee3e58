"""The businesses settings file: which businesses the merchant key serves, and how each is taxed.

VAT is filed per 사업자등록번호, but point3 only tells payments apart by `clientNickname`
(and `clientIdentification`). The file, named by `POINT3_BUSINESSES`, maps them:

    [[business]]
    id = "arthall"                       # a short stable name: letters, digits, - and _
    name = "아트홀 푸른별"                # display name in workbooks and exports
    registration_number = "101-86-00013" # 사업자등록번호: 10 digits, hyphens optional
    taxpayer_type = "일반과세자"          # or 간이과세자, 면세사업자
    sales = "all_taxable"                # or all_exempt, by_vat (the split rule)
    client_nickname = "아트홀 푸른별"     # or a list of nicknames
    client_identification = "..."        # optional: match only payments with this value
    fee_percent = "2.5"                  # optional: this business's point3 fee (else POINT3_FEE_PERCENT)
    fee_vat = true                       # optional: 10% VAT on that fee (else POINT3_FEE_VAT)

Without the file every payment is split by the rule and belongs to no declared business.
Every mistake is a ConfigError with one sentence naming the file, the entry and the field.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from point3_pipeline.config import ConfigError, fee_ppm

ENV_VAR = "POINT3_BUSINESSES"
TAXPAYER_TYPES = ("일반과세자", "간이과세자", "면세사업자")
SALES_TAXATION = ("all_taxable", "all_exempt", "by_vat")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REGISTRATION = re.compile(r"^\d{3}-?\d{2}-?\d{5}$")
_CHECK_WEIGHTS = (1, 3, 7, 1, 3, 7, 1, 3, 5)
_FIELDS = frozenset({"id", "name", "registration_number", "taxpayer_type", "sales",
                     "client_nickname", "client_identification", "fee_percent", "fee_vat"})


@dataclass(frozen=True)
class Business:
    id: str
    name: str
    registration_number: str  # 10 digits, no hyphens
    taxpayer_type: str
    sales: str
    client_nicknames: tuple[str, ...]
    client_identification: str | None = None
    fee_ppm: int | None = None  # the business's own point3 fee, parts per million of each sale
    fee_vat: bool | None = None  # whether 10% VAT is charged on it


def registration_check_digit(first_nine: str) -> int:
    """The 10th digit of a 사업자등록번호 (국세청's rule): weights 1,3,7,1,3,7,1,3,5 over the
    first nine digits, plus the tens of 5 × the ninth digit; the check is 10 − that sum mod 10."""
    digits = [int(c) for c in first_nine]
    total = sum(d * w for d, w in zip(digits, _CHECK_WEIGHTS)) + digits[8] * 5 // 10
    return (10 - total % 10) % 10


def is_valid_registration_number(number: str) -> bool:
    """True for `000-00-00000` or ten digits whose last digit is the checksum."""
    if not isinstance(number, str) or not _REGISTRATION.match(number):
        return False
    digits = number.replace("-", "")
    return registration_check_digit(digits[:9]) == int(digits[9])


def format_registration_number(digits: str) -> str:
    """`1018600013` -> `101-86-00013`, the way the number is printed."""
    return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"


def businesses_from_env(env: Mapping[str, str] = os.environ) -> list[Business]:
    """The declared businesses, or none when POINT3_BUSINESSES is unset (everything by the rule)."""
    value = env.get(ENV_VAR)
    if value is None or not value.strip():
        return []
    return load_businesses(Path(value.strip()))


def load_businesses(path: Path) -> list[Business]:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{ENV_VAR} points to {path}, which cannot be read ({exc.strerror}).") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: save the businesses file as UTF-8.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}).") from None
    return parse_businesses(data, str(path))


def parse_businesses(data: Mapping[str, object], source: str) -> list[Business]:
    """Validate the parsed file; every mistake found is one sentence of the error."""
    unknown = sorted(set(data) - {"business"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r}; list businesses as [[business]] tables.")
    entries = data.get("business", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{source}: 'business' must be a list of [[business]] tables.")
    problems: list[str] = []
    businesses = []
    for index, entry in enumerate(entries, start=1):
        business = _parse_entry(entry, f"{source}: business {index}", problems)
        if business is not None:
            businesses.append(business)
    _check_unique(businesses, source, problems)
    if problems:
        raise ConfigError(" ".join(problems))
    return businesses


def _text(entry: dict, key: str, where: str, problems: list[str], required: bool = True) -> str | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: {key} must be a non-empty string.")
        return None
    return value.strip()


def _parse_entry(entry: dict, where: str, problems: list[str]) -> Business | None:
    before = len(problems)
    id_ = _text(entry, "id", where, problems)
    if id_ is not None:
        where = f"{where} ({id_})"
        if not _ID.match(id_):
            problems.append(f"{where}: id must be 1 to 64 letters, digits, '-' or '_', not {id_!r}.")
    for key in sorted(set(entry) - _FIELDS):
        problems.append(f"{where}: unknown field {key!r} (expected {', '.join(sorted(_FIELDS))}).")
    name = _text(entry, "name", where, problems)
    number = _registration(entry, where, problems)
    taxpayer = _choice(entry, "taxpayer_type", TAXPAYER_TYPES, where, problems)
    sales = _choice(entry, "sales", SALES_TAXATION, where, problems)
    if taxpayer == "면세사업자" and sales not in (None, "all_exempt"):
        problems.append(f"{where}: a 면세사업자 has no taxable sales, so sales must be 'all_exempt', not {sales!r}.")
    nicknames = _nicknames(entry, where, problems)
    identification = _text(entry, "client_identification", where, problems, required=False)
    fee, fee_vat = _fee(entry, where, problems)
    if len(problems) > before:
        return None
    return Business(id_, name, number, taxpayer, sales, nicknames, identification, fee, fee_vat)


def _fee(entry: dict, where: str, problems: list[str]) -> tuple[int | None, bool | None]:
    """The optional fee_percent (a string or whole number: a TOML decimal would be binary
    floating point) and fee_vat."""
    value, vat = entry.get("fee_percent"), entry.get("fee_vat")
    fee = None
    if value is not None:
        fee = fee_ppm(str(value)) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        if fee is None:
            problems.append(f"{where}: fee_percent must be a percent with at most 4 decimals written as a string, "
                            f"such as \"3.3\", not {value!r}.")
    if vat is not None and not isinstance(vat, bool):
        problems.append(f"{where}: fee_vat must be true or false, not {vat!r}.")
        vat = None
    return fee, vat


def _registration(entry: dict, where: str, problems: list[str]) -> str | None:
    value = _text(entry, "registration_number", where, problems)
    if value is None:
        return None
    if not _REGISTRATION.match(value):
        problems.append(f"{where}: registration_number must be 10 digits (000-00-00000), not {value!r}.")
        return None
    if not is_valid_registration_number(value):
        problems.append(f"{where}: registration_number {value} fails the 사업자등록번호 checksum; check for a typo.")
        return None
    return value.replace("-", "")


def _choice(entry: dict, key: str, allowed: Sequence[str], where: str, problems: list[str]) -> str | None:
    value = _text(entry, key, where, problems)
    if value is not None and value not in allowed:
        problems.append(f"{where}: {key} must be one of {', '.join(allowed)}, not {value!r}.")
        return None
    return value


def _nicknames(entry: dict, where: str, problems: list[str]) -> tuple[str, ...]:
    value = entry.get("client_nickname")
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        problems.append(f"{where}: client_nickname must be a non-empty string or a list of them.")
        return ()
    return tuple(v.strip() for v in values)


def _check_unique(businesses: list[Business], source: str, problems: list[str]) -> None:
    seen_ids: set[str] = set()
    seen_numbers: dict[str, str] = {}
    seen_matches: dict[tuple[str, str | None], str] = {}
    for business in businesses:
        if business.id in seen_ids:
            problems.append(f"{source}: business id {business.id!r} is used twice; give each business its own id.")
        seen_ids.add(business.id)
        other = seen_numbers.setdefault(business.registration_number, business.id)
        if other != business.id:
            problems.append(f"{source}: businesses {other} and {business.id} have the same registration_number; "
                            "list one business with all its nicknames instead.")
        for nickname in business.client_nicknames:
            key = (nickname, business.client_identification)
            other = seen_matches.setdefault(key, business.id)
            if other != business.id:
                problems.append(f"{source}: businesses {other} and {business.id} both claim client_nickname "
                                f"{nickname!r}; a payment must match one business.")


def load_declarations(conn: duckdb.DuckDBPyConnection, businesses: Sequence[Business]) -> int:
    """Replace `business_declarations` with one row per (business, nickname); returns the rows."""
    rows = [
        (b.id, b.name, b.registration_number, b.taxpayer_type, b.sales, nickname, b.client_identification)
        for b in businesses for nickname in b.client_nicknames
    ]
    conn.execute("DELETE FROM business_declarations")
    if rows:
        conn.executemany(
            "INSERT INTO business_declarations VALUES (?, ?, ?, ?, ?, ?, ?, now())", rows
        )
    return len(rows)
