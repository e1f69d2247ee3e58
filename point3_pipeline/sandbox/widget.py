"""The widget page the merchant opens at /?d=<token>: HTML from templates in static/."""

from __future__ import annotations

import html
import json
from functools import cache
from importlib.resources import files
from string import Template

APPROVE_PATH = "/widget/approve"


@cache
def _template(name: str) -> Template:
    return Template(files("point3_pipeline.sandbox").joinpath("static", name).read_text(encoding="utf-8"))


def payment_page(token: str, merchant: str, product: str, amount: int) -> str:
    config = json.dumps({"token": token, "approveUrl": APPROVE_PATH})
    # "</" inside a script would end it early; the JSON escape keeps the string intact.
    config = config.replace("<", "\\u003c")
    return _template("widget.html").substitute(
        merchant=html.escape(merchant), product=html.escape(product), amount=f"{amount:,}", config=config,
    )


def error_page(title: str, detail: str) -> str:
    return _template("widget_error.html").substitute(title=html.escape(title), detail=html.escape(detail))
