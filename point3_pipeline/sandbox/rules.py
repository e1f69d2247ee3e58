"""point3's documented rules for a payment request (POST /purchase/token).

Every broken rule is reported, each naming the field and the rule, so a 400 tells the
caller everything to fix at once.
"""

from __future__ import annotations

from typing import Any

from point3_pipeline.models import CASH_RECEIPT_TYPES, CULTURE_EXPENSE_TYPES

AMOUNT_FIELDS = ("totalCharge", "taxFreeAmount", "vat")
STRING_FIELDS = (
    "clientGeneratedUserId",
    "orderIdFromClient",
    "cultureExpenseType",
    "cashReceiptType",
    "clientBusinessNum",
    "clientNickname",
    "purchasingProductName",
)
REQUIRED_FIELDS = ("clientGeneratedUserId", "totalCharge", "orderIdFromClient", "cultureExpenseType",
                   "cashReceiptType", "clientBusinessNum", "clientNickname", "purchasingProductName",
                   "taxFreeAmount", "vat")


def amount_problems(body: dict[str, Any]) -> list[str]:
    """Types, positivity and vat + taxFreeAmount == totalCharge, for present amounts."""
    problems = []
    for name in AMOUNT_FIELDS:
        if name not in body:
            continue
        value = body[name]
        if type(value) is not int:  # bool is an int subclass; floats are never amounts
            problems.append(f"{name} must be an integer number of won, not {_json_type(value)}")
        elif value <= 0:
            problems.append(f"{name} must be greater than 0, not {value}")
    amounts = [body.get(name) for name in AMOUNT_FIELDS]
    if all(type(value) is int for value in amounts):
        total, tax_free, vat = amounts
        if vat + tax_free != total:
            problems.append(f"vat + taxFreeAmount must equal totalCharge ({vat} + {tax_free} != {total})")
    return problems


def culture_problems(body: dict[str, Any]) -> list[str]:
    code = body.get("cultureExpenseType")
    if isinstance(code, str) and code not in CULTURE_EXPENSE_TYPES:
        return [f"cultureExpenseType must be one of {', '.join(CULTURE_EXPENSE_TYPES)}, not {code!r:.20}"]
    return []


def payment_request_problems(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    problems = [f"missing required field {name}" for name in REQUIRED_FIELDS if name not in body]
    for name in STRING_FIELDS:
        if name in body:
            value = body[name]
            if not isinstance(value, str):
                problems.append(f"{name} must be a string, not {_json_type(value)}")
            elif not value.strip():
                problems.append(f"{name} must not be empty")
    problems += amount_problems(body)
    problems += culture_problems(body)
    receipt = body.get("cashReceiptType")
    if isinstance(receipt, str) and receipt not in CASH_RECEIPT_TYPES:
        problems.append(f"cashReceiptType must be 'a' (개인, the only type today), not {receipt!r:.20}")
    number = body.get("clientBusinessNum")
    if isinstance(number, str) and not (len(number) == 10 and number.isascii() and number.isdigit()):
        problems.append("clientBusinessNum must be exactly 10 digits")
    return problems


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
