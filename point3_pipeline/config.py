"""Settings from the environment: the same variable names for the CLI, Dagster and tests.

| variable                 | meaning                                              |
|--------------------------|------------------------------------------------------|
| POINT3_API_URL           | base URL of the point3 API (or of the sandbox)       |
| POINT3_SECRET_KEY        | the merchant secret key                              |
| POINT3_SECRET_KEY_FILE   | or: a file holding the key (what `key rotate` writes) |
| POINT3_WAREHOUSE         | the DuckDB file                                      |
| POINT3_REPORTS_DIR       | where workbooks are written                          |
| POINT3_START_DATE        | first day of history, YYYY-MM-DD (KST)               |

A missing or malformed setting raises ConfigError with one sentence naming the variable.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

ENV_VARS = (
    "POINT3_API_URL",
    "POINT3_SECRET_KEY",
    "POINT3_SECRET_KEY_FILE",
    "POINT3_WAREHOUSE",
    "POINT3_REPORTS_DIR",
    "POINT3_START_DATE",
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


def api_url(env: Mapping[str, str] = os.environ) -> str:
    value = _get(env, "POINT3_API_URL")
    if value is None:
        raise ConfigError("POINT3_API_URL is not set: give the point3 API base URL (for the sandbox, the URL `point3 sandbox` prints).")
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"POINT3_API_URL must be an http(s) URL such as http://127.0.0.1:8030, not {value!r}.")
    return value.rstrip("/")


def secret_key(env: Mapping[str, str] = os.environ) -> SecretKey:
    value = _get(env, "POINT3_SECRET_KEY")
    if value is not None:
        return SecretKey(value)
    path = _get(env, "POINT3_SECRET_KEY_FILE")
    if path is None:
        raise ConfigError("POINT3_SECRET_KEY is not set: set it, or set POINT3_SECRET_KEY_FILE to a file holding the merchant key.")
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"POINT3_SECRET_KEY_FILE points to {path}, which cannot be read ({exc.strerror}).") from None
    if not key:
        raise ConfigError(f"POINT3_SECRET_KEY_FILE points to {path}, which is empty.")
    return SecretKey(key)


def key_file(env: Mapping[str, str] = os.environ) -> Path:
    path = _get(env, "POINT3_SECRET_KEY_FILE")
    if path is None:
        raise ConfigError("POINT3_SECRET_KEY_FILE is not set: key rotation writes the new key there, so it must name a file.")
    return Path(path)


def warehouse_path(env: Mapping[str, str] = os.environ) -> Path:
    value = _get(env, "POINT3_WAREHOUSE")
    if value is None:
        raise ConfigError("POINT3_WAREHOUSE is not set: give the path of the DuckDB warehouse file, e.g. warehouse/point3.duckdb.")
    path = Path(value)
    if path.is_dir():
        raise ConfigError(f"POINT3_WAREHOUSE must be a file path, but {value} is a directory.")
    return path


def reports_dir(env: Mapping[str, str] = os.environ) -> Path:
    value = _get(env, "POINT3_REPORTS_DIR")
    if value is None:
        raise ConfigError("POINT3_REPORTS_DIR is not set: give the folder where workbooks are written, e.g. reports.")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"POINT3_REPORTS_DIR must be a folder, but {value} is a file.")
    return path


def start_date(env: Mapping[str, str] = os.environ) -> dt.date:
    value = _get(env, "POINT3_START_DATE")
    if value is None:
        raise ConfigError("POINT3_START_DATE is not set: give the first day of history as YYYY-MM-DD.")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"POINT3_START_DATE must be a date as YYYY-MM-DD, not {value!r}.") from None
