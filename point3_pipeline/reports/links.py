"""Links into the reports portal (`point3 serve`): the page of a period's workbook versions."""

from __future__ import annotations

from urllib.parse import quote


def version_page_url(portal_url: str, merchant_id: str, kind: str, period: str) -> str:
    """`portal_url`/m/<merchant>/versions/<kind>/<period>: every version of the merchant's
    `kind` workbook ('tax', 'vat', 'reconciliation') for the period label (2026-11, 2026-Q3)."""
    parts = (quote(part, safe="") for part in (merchant_id, kind, period))
    return "{}/m/{}/versions/{}/{}".format(portal_url.rstrip("/"), *parts)
