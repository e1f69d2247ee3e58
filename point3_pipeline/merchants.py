"""The merchants file: the point3 merchants one deployment keeps books for, each kept apart.

`POINT3_MERCHANTS` names a TOML file (the same family as the businesses file):

    root = "/srv/point3"                    # every merchant's folder is under it

    [[merchant]]
    id = "arthall"                          # a slug: lowercase letters, digits and '-'
    name = "아트홀 푸른별"                   # display name
    key_file = "keys/arthall.key"           # the merchant key, alone in its file (chmod 600)
    start_date = 2026-01-01                 # first day of history (KST), a TOML date or "YYYY-MM-DD"
    businesses = "arthall-businesses.toml"  # optional: its businesses file
    api_url = "https://..."                 # optional: default POINT3_API_URL
    fee_percent = "3.3"                     # optional: its contract with point3, for the
    fee_vat = true                          #   reconciliation (POINT3_FEE_PERCENT, _FEE_VAT,
    credit_delay_days = 1                   #   _CREDIT_DELAY_DAYS, _DEPOSIT_MATCH_DAYS,
    deposit_match_days = 3                  #   _PAYOUT_DEPOSIT_DAYS, _UNEXPLAINED_THRESHOLD_WON);
    payout_deposit_days = 5                 #   a term not given comes from the environment
    unexplained_threshold_won = 0

Relative paths are relative to the merchants file's folder. Each merchant's files live in
`<root>/<id>/`: `warehouse/point3.duckdb`, its published copy beside it and `reports/`, so
one merchant's people can be given its folder alone and removing a merchant is removing it.

A mistake in the file as a whole (unreadable, not TOML, no root) is a ConfigError; a mistake
in one entry fails that merchant alone: `load_merchants` returns the good merchants and one
sentence per bad entry. Without the file, today's POINT3_* variables describe one merchant,
`default`, with today's paths. Keys are never held here: a Merchant knows its key file and
reads the key when a client is built.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from point3_pipeline import config
from point3_pipeline.businesses import load_businesses
from point3_pipeline.config import ConfigError, SecretKey
from point3_pipeline.warehouse import Warehouse

ENV_VAR = "POINT3_MERCHANTS"
DEFAULT_ID = "default"
WAREHOUSE_NAME = "point3.duckdb"
# A slug is a folder name, a Dagster partition key and part of a DuckDB alias: lowercase
# ASCII letters, digits and inner hyphens, at most 63 characters.
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# The merchant's reconciliation terms: field -> the variable config.reconciliation_terms reads.
TERM_VARIABLES = {
    "fee_percent": "POINT3_FEE_PERCENT",
    "fee_vat": "POINT3_FEE_VAT",
    "credit_delay_days": "POINT3_CREDIT_DELAY_DAYS",
    "deposit_match_days": "POINT3_DEPOSIT_MATCH_DAYS",
    "payout_deposit_days": "POINT3_PAYOUT_DEPOSIT_DAYS",
    "unexplained_threshold_won": "POINT3_UNEXPLAINED_THRESHOLD_WON",
}
_FIELDS = ("id", "name", "key_file", "start_date", "businesses", "api_url", *TERM_VARIABLES)
_TOP_LEVEL = ("root", "merchant")


@dataclass(frozen=True)
class Merchant:
    """One merchant and where its files live. No key: `secret_key()` reads it when needed."""

    id: str
    name: str
    api_url: str
    start_date: dt.date
    warehouse_path: Path
    reports_dir: Path
    key_file: Path | None  # None: the default merchant's key from POINT3_SECRET_KEY
    businesses_file: Path | None = None
    folder: Path | None = None  # <root>/<id>; None for the default merchant of the variables
    key_setting: str = field(default="POINT3_SECRET_KEY_FILE", repr=False, compare=False)
    # Its own reconciliation terms as (variable, value); a term absent here comes from the environment.
    terms: tuple[tuple[str, str], ...] = ()

    @property
    def published_path(self) -> Path:
        return self.warehouse().published_path

    def warehouse(self, **options) -> Warehouse:
        return Warehouse(self.warehouse_path, **options)

    def environment(self) -> dict[str, str]:
        """The POINT3_* variables that make today's single-merchant commands (a `point3` or
        `dagster` process) work on this merchant alone, laid over the parent's environment.
        Variables of another merchant the parent may carry are blanked (blank is unset), so a
        parent's POINT3_SECRET_KEY cannot stand in for this merchant's key file. The key stays
        in its file; the default merchant without one inherits POINT3_SECRET_KEY as today."""
        env = {
            ENV_VAR: "",  # the child sees this one merchant, as `default`
            "POINT3_API_URL": self.api_url,
            "POINT3_START_DATE": self.start_date.isoformat(),
            "POINT3_WAREHOUSE": str(self.warehouse_path),
            "POINT3_REPORTS_DIR": str(self.reports_dir),
            "POINT3_BUSINESSES": str(self.businesses_file or ""),
        }
        if self.key_file is not None:
            env.update(POINT3_SECRET_KEY="", POINT3_SECRET_KEY_FILE=str(self.key_file))
        env.update(self.terms)
        return env

    def secret_key(self, env: Mapping[str, str] = os.environ) -> SecretKey:
        """The key, read now from the key file (or, for the default merchant, as config reads it)."""
        if self.key_file is None:
            return config.secret_key(env)
        return SecretKey(config.read_key_file(self.key_file, self.key_setting))


@dataclass(frozen=True)
class MerchantError:
    """A merchant entry that cannot be used, and why, in one sentence naming the entry."""

    entry: str  # the merchant's id, or "merchant N" when it has no usable id
    message: str


@dataclass(frozen=True)
class Merchants:
    """What the merchants file gave: the usable merchants in file order, and the bad entries."""

    merchants: tuple[Merchant, ...]
    errors: tuple[MerchantError, ...]
    source: str  # the file, or "the POINT3_* variables"
    root: Path | None = None  # the folder of every merchant's folder (and the catalog); None without the file

    def get(self, merchant_id: str) -> Merchant:
        """The merchant `merchant_id`; ConfigError with its entry's problem or the known ids."""
        for merchant in self.merchants:
            if merchant.id == merchant_id:
                return merchant
        for error in self.errors:
            if error.entry == merchant_id:
                raise ConfigError(error.message)
        known = ", ".join(m.id for m in self.merchants) or "none"
        raise ConfigError(f"{self.source} has no merchant {merchant_id!r} (known: {known}).")


def load_merchants(env: Mapping[str, str] = os.environ, *, today: dt.date | None = None,
                   check_keys: bool = True) -> Merchants:
    """The merchants of the file named by POINT3_MERCHANTS, or the one `default` merchant of
    the POINT3_* variables when it is unset. `check_keys=False`: for a reader of the merchants'
    files alone (the reports portal), which should run without access to any key."""
    value = env.get(ENV_VAR)
    if value is None or not value.strip():
        return default_merchant(env, today=today, check_keys=check_keys)
    return load_merchants_file(Path(value.strip()), env, today=today, check_keys=check_keys)


def default_merchant(env: Mapping[str, str] = os.environ, *, today: dt.date | None = None,
                     check_keys: bool = True) -> Merchants:
    """Today's single-merchant settings as the merchant `default`, paths unchanged."""
    source = "the POINT3_* variables"
    try:
        key_path = config._get(env, "POINT3_SECRET_KEY_FILE")
        key_file = None if config._get(env, "POINT3_SECRET_KEY") is not None or key_path is None else Path(key_path)
        if check_keys and key_file is None:
            config.secret_key(env)  # validated now, read again when used: it is not kept
        elif check_keys:
            config.read_key_file(key_file)
        businesses = config._get(env, "POINT3_BUSINESSES")
        merchant = Merchant(
            id=DEFAULT_ID, name=DEFAULT_ID, api_url=config.api_url(env),
            start_date=config.start_date(env, today=today), warehouse_path=config.warehouse_path(env),
            reports_dir=config.reports_dir(env), key_file=key_file,
            businesses_file=Path(businesses) if businesses else None,
        )  # fmt: skip
    except ConfigError as exc:
        return Merchants((), (MerchantError(DEFAULT_ID, f"merchant {DEFAULT_ID!r}: {exc}"),), source)
    return Merchants((merchant,), (), source)


def load_merchants_file(path: Path, env: Mapping[str, str] = os.environ, *,
                        today: dt.date | None = None, check_keys: bool = True) -> Merchants:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{ENV_VAR} points to {path}, which cannot be read ({exc.strerror}).") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: save the merchants file as UTF-8.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}).") from None
    return parse_merchants(data, path, env, today=today, check_keys=check_keys)


def parse_merchants(data: Mapping[str, object], path: Path, env: Mapping[str, str] = os.environ, *,
                    today: dt.date | None = None, check_keys: bool = True) -> Merchants:
    """Validate the parsed file: the file's own mistakes raise, each entry's fail that entry."""
    root = _root(data, path)
    entries = data.get("merchant", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{path}: 'merchant' must be a list of [[merchant]] tables.")
    default_url = config._get(env, "POINT3_API_URL")
    repeated = _repeated_ids(entries)
    merchants: list[Merchant] = []
    errors: list[MerchantError] = []
    for number, entry in enumerate(entries, start=1):
        id_ = entry.get("id")
        named = isinstance(id_, str) and bool(_SLUG.match(id_))
        entry_name = id_ if named else f"merchant {number}"
        where = f"{path}, merchant {id_!r}" if named else f"{path}, merchant {number}"
        try:
            if id_ in repeated:
                # One folder per id: neither entry is used, since which one owns the data cannot be told.
                raise ConfigError(f"{where}: the id {id_!r} is used by {repeated[id_]} entries; give each merchant its own id.")
            merchants.append(_parse_entry(entry, where, path, root, default_url, today, check_keys))
        except ConfigError as exc:
            if not any(e.entry == entry_name for e in errors):
                errors.append(MerchantError(entry_name, str(exc)))
    return Merchants(tuple(merchants), tuple(errors), str(path), root)


def _root(data: Mapping[str, object], path: Path) -> Path:
    unknown = sorted(set(data) - set(_TOP_LEVEL))
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r}; the file has root and [[merchant]] tables.")
    value = data.get("root")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: root must name the folder that holds every merchant's folder, e.g. root = \"merchants\".")
    return _relative_to(path, value.strip())


def _relative_to(path: Path, value: str) -> Path:
    return (path.parent / Path(value).expanduser()).absolute()


def _repeated_ids(entries: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        id_ = entry.get("id")
        if isinstance(id_, str):
            counts[id_] = counts.get(id_, 0) + 1
    return {id_: count for id_, count in counts.items() if count > 1}


def _parse_entry(entry: dict, where: str, path: Path, root: Path, default_url: str | None,
                 today: dt.date | None, check_keys: bool = True) -> Merchant:
    """The merchant of one [[merchant]] table; ConfigError with the first mistake in it."""
    id_ = entry.get("id")
    if not isinstance(id_, str) or not _SLUG.match(id_):
        raise ConfigError(f"{where}: id must be a slug of 1 to 63 lowercase letters, digits and inner '-', not {id_!r}.")
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} (expected {', '.join(_FIELDS)}).")
    name = _text(entry, "name", where)
    key_setting = f"{where}: key_file"
    key_file = _relative_to(path, _text(entry, "key_file", where))
    if check_keys:
        config.read_key_file(key_file, key_setting)  # checked (and warned about) now, never kept
    url = _text(entry, "api_url", where, required=False) or default_url
    if url is None:
        raise ConfigError(f"{where}: api_url is not given and POINT3_API_URL is not set: give either.")
    businesses = _text(entry, "businesses", where, required=False)
    businesses_file = _relative_to(path, businesses) if businesses else None
    if businesses_file is not None:
        _check_businesses(businesses_file, where)
    folder = root / id_
    return Merchant(
        id=id_, name=name, api_url=config.check_api_url(url, f"{where}: api_url"),
        start_date=_start_date(entry, where, today), warehouse_path=folder / "warehouse" / WAREHOUSE_NAME,
        reports_dir=folder / "reports", key_file=key_file,
        businesses_file=businesses_file, folder=folder, key_setting=key_setting, terms=_terms(entry, where),
    )  # fmt: skip


def _terms(entry: dict, where: str) -> tuple[tuple[str, str], ...]:
    """The entry's reconciliation terms as the variables config reads, each checked the way
    config checks that variable, the mistake named by its field."""
    terms = []
    for name, variable in TERM_VARIABLES.items():
        if name not in entry:
            continue
        value = _term_text(entry[name], name, where)
        try:
            config.reconciliation_terms({variable: value})
        except ConfigError as exc:
            raise ConfigError(f"{where}: {str(exc).replace(variable, name)}") from None
        terms.append((variable, value))
    return tuple(terms)


def _term_text(value: object, name: str, where: str) -> str:
    """A term's value as its variable's text: the fee a string ("3.3"), fee_vat a boolean, the rest whole numbers."""
    if name == "fee_percent":
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise ConfigError(f"{where}: fee_percent must be a percent as a string, such as \"3.3\", not {value!r}.")
    if name == "fee_vat":
        if isinstance(value, bool):
            return "yes" if value else "no"
        raise ConfigError(f"{where}: fee_vat must be true or false, not {value!r}.")
    if type(value) is int and value >= 0:
        return str(value)
    raise ConfigError(f"{where}: {name} must be a whole number from 0, not {value!r}.")


def _check_businesses(path: Path, where: str) -> None:
    """The merchant's businesses file must read and validate now, not at its first report."""
    try:
        path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: businesses points to {path}, which cannot be read ({exc.strerror}).") from None
    try:
        load_businesses(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _text(entry: dict, key: str, where: str, *, required: bool = True) -> str | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key} must be a non-empty string.")
    return value.strip()


def _start_date(entry: dict, where: str, today: dt.date | None) -> dt.date:
    value = entry.get("start_date")
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(f"{where}: start_date must be a date as YYYY-MM-DD, not {value!r}.") from None
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise ConfigError(f"{where}: start_date must be a date as YYYY-MM-DD, not {value!r}.")
    return config.check_start_date(value, f"{where}: start_date", today=today)
