"""The portal's settings: its store, where it listens, which proxies it trusts, its login and
session rules. Each from a POINT3_PORTAL_* variable (or a `point3 serve` option), a mistake
one sentence naming it.

Cookies are always `Secure` (TLS is a reverse proxy's job, see README): the one exception is
the loopback demo (`--insecure-loopback-demo`), accepted only when the portal listens on a
loopback address, where no one else can read the traffic.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from point3_pipeline import config
from point3_pipeline.config import ConfigError
from point3_pipeline.merchants import ENV_VAR as MERCHANTS_VAR
from point3_pipeline.portal.accounts import LoginPolicy
from point3_pipeline.portal.sessions import SessionPolicy

DB_VAR = "POINT3_PORTAL_DB"
DB_NAME = "portal.db"
FORWARDED_VAR = "POINT3_PORTAL_FORWARDED_ALLOW_IPS"
# variable -> (default, largest value, unit)
NUMBERS = {
    "POINT3_PORTAL_MAX_FAILED_LOGINS": (5, 1_000, "failed logins"),
    "POINT3_PORTAL_MAX_FAILED_LOGINS_PER_ADDRESS": (20, 100_000, "failed logins"),
    "POINT3_PORTAL_FAILURE_WINDOW_MINUTES": (15, 10_080, "minutes"),
    "POINT3_PORTAL_LOCKOUT_MINUTES": (15, 10_080, "minutes"),
    "POINT3_PORTAL_SESSION_HOURS": (12, 720, "hours"),
    "POINT3_PORTAL_IDLE_MINUTES": (120, 43_200, "minutes"),
}
ENV_VARS = (DB_VAR, FORWARDED_VAR, *NUMBERS)  # every variable the portal reads (README, Reports portal)


@dataclass(frozen=True)
class PortalSettings:
    db_path: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)  # where the merchants come from
    host: str = "127.0.0.1"
    port: int = 8080
    insecure_loopback_demo: bool = False
    forwarded_allow_ips: tuple[str, ...] = ()
    login: LoginPolicy = LoginPolicy()
    session: SessionPolicy = SessionPolicy()

    def __post_init__(self):
        if self.insecure_loopback_demo and not is_loopback(self.host):
            raise ConfigError(f"--insecure-loopback-demo sends cookies without TLS, so it is only for a loopback "
                              f"address such as 127.0.0.1, not {self.host}: serve behind a TLS proxy instead.")

    @property
    def secure_cookies(self) -> bool:
        return not self.insecure_loopback_demo


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_db_path(env: Mapping[str, str] = os.environ) -> Path:
    """POINT3_PORTAL_DB, or portal.db beside the merchants file, or (one merchant of the POINT3_*
    variables) in the folder that holds the warehouse's folder: the project's working folder."""
    value = config._get(env, DB_VAR)
    if value is not None:
        return Path(value).expanduser().absolute()
    merchants_file = config._get(env, MERCHANTS_VAR)
    if merchants_file is not None:
        return Path(merchants_file).expanduser().absolute().parent / DB_NAME
    return config.warehouse_path(env).absolute().parent.parent / DB_NAME


def forwarded_allow_ips(value: str | None) -> tuple[str, ...]:
    """The proxies whose X-Forwarded-For/-Proto are believed: addresses or networks, comma-separated."""
    if value is None or not value.strip():
        return ()
    out = []
    for part in (p.strip() for p in value.split(",")):
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)) if "/" in part else str(ipaddress.ip_address(part)))
        except ValueError:
            raise ConfigError(f"{FORWARDED_VAR} (--forwarded-allow-ips) must list the reverse proxy's addresses or "
                              f"networks, comma-separated, e.g. 127.0.0.1; {part!r} is none ('*' would let anyone "
                              "pretend to be any address).") from None
    return tuple(out)


def _number(env: Mapping[str, str], variable: str) -> int:
    default, most, unit = NUMBERS[variable]
    value = config._get(env, variable)
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]+", value) or not 1 <= int(value) <= most:
        raise ConfigError(f"{variable} must be a whole number of {unit} from 1 to {most:,}, not {value!r} (unset it for {default}).")
    return int(value)


def login_policy(env: Mapping[str, str] = os.environ) -> LoginPolicy:
    return LoginPolicy(
        max_failures=_number(env, "POINT3_PORTAL_MAX_FAILED_LOGINS"),
        max_address_failures=_number(env, "POINT3_PORTAL_MAX_FAILED_LOGINS_PER_ADDRESS"),
        failure_window=dt.timedelta(minutes=_number(env, "POINT3_PORTAL_FAILURE_WINDOW_MINUTES")),
        lockout=dt.timedelta(minutes=_number(env, "POINT3_PORTAL_LOCKOUT_MINUTES")),
    )


def session_policy(env: Mapping[str, str] = os.environ) -> SessionPolicy:
    return SessionPolicy(
        lifetime=dt.timedelta(hours=_number(env, "POINT3_PORTAL_SESSION_HOURS")),
        idle=dt.timedelta(minutes=_number(env, "POINT3_PORTAL_IDLE_MINUTES")),
    )


def from_env(env: Mapping[str, str] = os.environ, *, host: str = "127.0.0.1", port: int = 8080,
             insecure_loopback_demo: bool = False, forwarded: str | None = None) -> PortalSettings:  # fmt: skip
    """The settings of `point3 serve`: its options over the variables."""
    return PortalSettings(
        db_path=default_db_path(env), env=dict(env), host=host, port=port,
        insecure_loopback_demo=insecure_loopback_demo,
        forwarded_allow_ips=forwarded_allow_ips(forwarded if forwarded is not None else env.get(FORWARDED_VAR)),
        login=login_policy(env), session=session_policy(env),
    )  # fmt: skip
