"""A deployment for the portal's tests: a merchants file with two merchants whose warehouses,
published copies, workbooks (real renders, two versions of one) and filing CSVs are real, and
a third merchant with nothing published yet. Built once per test module (a few seconds)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from starlette.testclient import TestClient

from point3_pipeline.export import export_filing
from point3_pipeline.merchants import Merchant, load_merchants_file
from point3_pipeline.portal.app import create_app
from point3_pipeline.portal.settings import PortalSettings
from point3_pipeline.portal.store import open_store
from point3_pipeline.reports import render_reconciliation_report, render_tax_report
from tests.report_fixtures import Books, kst

PERIOD = "2025-11"
NOW = kst(2026, 1, 5, 9)
# Merchant and business names are untrusted text: the pages must show them escaped.
NAMES = {"arthall": '아트홀 <b>푸른별</b> & "극장"', "bookcafe": "북카페 책방", "empty": "새 가맹점"}
NICKNAMES = {"arthall": "<script>alert(1)</script> 극장", "bookcafe": "북카페"}
PASSWORD = "correct horse battery"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # argon2id, cheap for tests


@dataclass(frozen=True)
class Deployment:
    folder: Path
    merchants_file: Path

    def merchant(self, merchant_id: str) -> Merchant:
        return load_merchants_file(self.merchants_file).get(merchant_id)

    def env(self) -> dict[str, str]:
        return {"POINT3_MERCHANTS": str(self.merchants_file)}


def _merchants_toml() -> str:
    entries = [
        f'[[merchant]]\nid = "{mid}"\nname = \'{name}\'\nkey_file = "keys/{mid}.key"\nstart_date = "2025-01-01"\n'
        f'api_url = "http://127.0.0.1:9"\n'
        for mid, name in NAMES.items()
    ]
    return 'root = "merchants"\n\n' + "\n".join(entries)


def _books(merchant: Merchant, nickname: str) -> None:
    books = Books(merchant.warehouse_path)
    books.payment(f"{merchant.id}-1", kst(2025, 11, 2, 10), nickname=nickname)
    books.payment(f"{merchant.id}-2", kst(2025, 11, 3, 10), total=5_000, vat=0, supply=5_000, nickname=nickname)
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 11, 30))
    warehouse = books.refresh()
    render_tax_report(warehouse, PERIOD, merchant.reports_dir, now=NOW)
    render_reconciliation_report(warehouse, PERIOD, merchant.reports_dir, now=NOW)
    books.payment(f"{merchant.id}-late", kst(2025, 11, 4, 10), total=22_000, seen_at=kst(2025, 12, 5), nickname=nickname)
    warehouse = books.refresh()
    render_tax_report(warehouse, PERIOD, merchant.reports_dir, now=NOW)  # v2: one payment found late
    with warehouse.connect() as conn:
        export_filing(conn, dt.date(2025, 11, 1), dt.date(2025, 11, 30), merchant.reports_dir / PERIOD)
    warehouse.publish()


def write_merchants_file(folder: Path) -> Path:
    """folder/merchants.toml of the three merchants, with their key files (mode 600)."""
    (folder / "keys").mkdir(parents=True)
    for mid in NAMES:
        key = folder / "keys" / f"{mid}.key"
        key.write_text(f"sk_test_{mid}_0123456789abcdef\n")
        key.chmod(0o600)
    path = folder / "merchants.toml"
    path.write_text(_merchants_toml(), encoding="utf-8")
    return path


def build_deployment(folder: Path) -> Deployment:
    deployment = Deployment(folder, write_merchants_file(folder))
    for mid, nickname in NICKNAMES.items():
        _books(deployment.merchant(mid), nickname)
    return deployment


def portal_client(deployment: Deployment, db_path: Path, *, clock=None, demo: bool = False,
                  **settings) -> TestClient:  # fmt: skip
    """The real app over its own store, spoken to as https://testserver (so Secure cookies go back)."""
    options = {"clock": clock} if clock else {}
    store = open_store(db_path, **options)
    portal_settings = PortalSettings(db_path=db_path, env=deployment.env(), insecure_loopback_demo=demo, **settings)
    app = create_app(portal_settings, store=store, hasher=FAST_HASHER)
    return TestClient(app, base_url="http://testserver" if demo else "https://testserver")


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(text: str) -> str:
    return CSRF.search(text).group(1)


def log_in(client: TestClient, name: str, password: str = PASSWORD):
    form = client.get("/login")
    return client.post("/login", data={"username": name, "password": password, "csrf_token": csrf_of(form.text)},
                       follow_redirects=False)  # fmt: skip
