"""Several merchants in one sandbox (profiles.py says how each differs), under one clock and
one stall gate; and the files the pipeline needs to keep their books.

`write_merchants_file` writes a merchants file (point3_pipeline/merchants.py), one key file
each (mode 600) and one businesses file each.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from point3_pipeline.businesses import format_registration_number
from point3_pipeline.rollforward import percent_text
from point3_pipeline.sandbox.clock import SandboxClock
from point3_pipeline.sandbox.config import SandboxConfig
from point3_pipeline.sandbox.errors import ApiError
from point3_pipeline.sandbox.profiles import MerchantProfile, merchant_profiles
from point3_pipeline.sandbox.settlement import SettlementTerms
from point3_pipeline.sandbox.stall import StallGate
from point3_pipeline.sandbox.state import SandboxState


class SandboxMerchants:
    """Every merchant of one sandbox: one state each, sharing the clock and the stall gate."""

    def __init__(self, config: SandboxConfig | None = None, count: int = 1):
        config = config or SandboxConfig()
        clock = SandboxClock(config.start_at, config.speed)
        gate = StallGate()
        self.states: tuple[SandboxState, ...] = tuple(
            SandboxState(config, profile=profile, clock=clock, stall_gate=gate)
            for profile in merchant_profiles(config, count)
        )

    @property
    def first(self) -> SandboxState:
        return self.states[0]

    def by_key(self, key: str) -> SandboxState | None:
        """The merchant whose current key this is (every key compared, in constant time each)."""
        found = [state for state in self.states if state.key_matches(key)]
        return found[0] if found else None

    def by_token(self, token: str) -> SandboxState:
        """The merchant that issued a payment token; the first one (whose lookup then answers
        404) when none did."""
        return next((state for state in self.states if state.has_session(token)), self.first)

    def chosen(self, reference: str | None) -> SandboxState | None:
        """The merchant an admin request names by number (1..N) or by its current key; None
        when it names none. ApiError 404 for a reference that is neither."""
        if reference is None or reference == "":
            return None
        if reference.isascii() and reference.isdigit():
            if 1 <= int(reference) <= len(self.states):
                return self.states[int(reference) - 1]
            raise ApiError(404, f"no merchant {reference}: this sandbox serves merchants 1 to {len(self.states)}")
        state = self.by_key(reference)
        if state is None:
            raise ApiError(404, "no merchant has that key (give merchant=N, 1 to "
                                f"{len(self.states)}, or a merchant's current key)")
        return state

    def one(self, reference: str | None) -> SandboxState:
        """The named merchant, or the only one; ApiError 400 when several serve and none is named."""
        state = self.chosen(reference)
        if state is not None:
            return state
        if len(self.states) == 1:
            return self.first
        raise ApiError(400, f"this sandbox serves {len(self.states)} merchants: name one with merchant=N "
                            f"(1 to {len(self.states)}) or merchant=<its key>")

    def targets(self, reference: str | None) -> tuple[SandboxState, ...]:
        """The named merchant, or every merchant when none is named (changes to all of them)."""
        state = self.chosen(reference)
        return self.states if state is None else (state,)


def merchants_toml(url: str, states: tuple[SandboxState, ...], start_date: dt.date, root: str) -> str:
    lines = ["# Written by `point3 sandbox --write-merchants`: the sandbox's merchants, for POINT3_MERCHANTS.",
             f"root = {_toml(root)}", ""]
    for state in states:
        profile = state.profile
        lines += ["[[merchant]]", f"id = {_toml(profile.id)}", f"name = {_toml(profile.name)}",
                  f"key_file = {_toml(f'keys/{profile.id}.key')}", f"start_date = {start_date.isoformat()}",
                  f"businesses = {_toml(f'businesses/{profile.id}.toml')}", f"api_url = {_toml(url)}",
                  *terms_toml(state.settlement_terms), ""]
    return "\n".join(lines)


def terms_toml(terms: SettlementTerms) -> list[str]:
    """The merchant's contract as it declares it to the reconciliation: fee, fee VAT, credit delay."""
    return [f"fee_percent = {_toml(percent_text(terms.fee_ppm).removesuffix('%'))}",
            f"fee_vat = {'true' if terms.fee_vat else 'false'}",
            f"credit_delay_days = {terms.credit_delay_days}"]


def businesses_toml(profile: MerchantProfile) -> str:
    lines = [f"# The businesses of sandbox merchant {profile.number} ({profile.name}).", ""]
    for business in profile.businesses:
        d = business.declaration
        lines += ["[[business]]", f"id = {_toml(d.id)}", f"name = {_toml(business.nickname)}",
                  f"registration_number = {_toml(format_registration_number(d.registration_number))}",
                  f"taxpayer_type = {_toml(d.taxpayer_type)}", f"sales = {_toml(d.sales)}",
                  f"client_nickname = {_toml(business.nickname)}"]
        if d.client_identification:
            lines.append(f"client_identification = {_toml(d.client_identification)}")
        lines.append("")
    return "\n".join(lines)


def write_merchants_file(folder: Path, url: str, states: tuple[SandboxState, ...], start_date: dt.date, *,
                         root: str = "merchants") -> Path:
    """`folder`/merchants.toml for every merchant, with keys/<id>.key (their current keys, mode
    600) and businesses/<id>.toml beside it; `root` (relative to `folder`) holds their data."""
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    (folder / "businesses").mkdir(exist_ok=True)
    for state in states:
        profile = state.profile
        _write(folder / "keys" / f"{profile.id}.key", state.key + "\n", mode=0o600)
        _write(folder / "businesses" / f"{profile.id}.toml", businesses_toml(profile))
    path = folder / "merchants.toml"
    _write(path, merchants_toml(url, states, start_date, root))
    return path


def _write(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Whole or not at all; a key file is private from its first byte."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _toml(text: str) -> str:
    # A JSON string is a TOML basic string for the text written here (no control characters).
    return json.dumps(text, ensure_ascii=False)
