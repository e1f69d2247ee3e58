"""A hand-written OpenAPI 3.1 description of point3's merchant API (what the sandbox serves).

Written from point3's documentation, with this project's readings of what it leaves open
(KST times, integer won). The sandbox's /_sandbox admin endpoints are not part of it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from point3_pipeline.models import CULTURE_EXPENSE_TYPES

_REF = "#/components/schemas/"


def _envelope(result: dict[str, Any] | None, description: str) -> dict[str, Any]:
    schema = {
        "allOf": [{"$ref": _REF + "Envelope"}],
        "properties": {"result": result if result is not None else {"type": "null"}},
    }
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ops(summary: str, description: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "description": description, "tags": ["point3"], "responses": responses, **extra}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


ERROR_STATUSES = ("400", "401", "429", "500")


@cache
def openapi_document() -> dict[str, Any]:
    amount = {"type": "integer", "description": "Korean won (KRW), an integer."}
    timestamp = {"type": "string", "pattern": "^[0-9]{14}$", "description": "YYYYMMDDHHmmss, Korea Standard Time."}
    order_fields = {
        "signature": {"type": "string", "description": "Unique key of the payment, e.g. 32 alphanumerics."},
        "userId": {"type": "string", "description": "point3's user id."},
        "clientNickname": {"type": "string"},
        "purchasingProductName": {"type": "string"},
        "totalCharge": amount,
        "taxFreeAmount": amount,
        "vat": amount,
        "orderIdFromClient": {"type": "string", "description": "The merchant's order id; not unique."},
        "clientIdentification": {"type": "string", "description": "The merchant's point3 identifier."},
        "clientGeneratedUserId": {"type": "string"},
        "paymentMethodType": {"type": "string", "description": "methodType; values undocumented."},
        "cultureExpenseType": {"$ref": _REF + "CultureExpenseType"},
        "timeStampOnRequest": timestamp,
        "timeStampOnAccept": timestamp,
    }
    errors = {status: {"$ref": f"#/components/responses/E{status}"} for status in ERROR_STATUSES}
    errors_404 = {**errors, "404": {"$ref": "#/components/responses/E404"}}
    order_ref = {"$ref": _REF + "Order"}
    orders = {"type": "object", "required": ["orders"],
              "properties": {"orders": {"type": "array", "items": order_ref}}}
    error_response = {
        status: {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": _REF + "ErrorEnvelope"}}},
            **({"headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}}
               if status == "429" else {}),
        }
        for status, text in {
            "400": "The request is malformed; the message names the broken rule or parameter.",
            "401": "The Authorization header is missing, or the key is wrong or was rotated.",
            "404": "No such payment.",
            "429": "Too many requests; wait Retry-After seconds.",
            "500": "Unknown internal error.",
        }.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "point3 merchant API",
            "version": "1.0.0",
            "description": (
                "point3's payment-widget API as documented by point3, served by the point3-pipeline sandbox. "
                "Times are Korea Standard Time (Asia/Seoul); amounts are integer won."
            ),
        },
        "servers": [{"url": "/", "description": "this sandbox (point3 documents no API host)"}],
        "security": [{"merchantKey": []}],
        "tags": [
            {"name": "point3", "description": "The merchant API."},
            {"name": "widget", "description": "The payment widget page (widget.point3.io)."},
        ],
        "paths": {
            "/purchase/token": {"post": _ops(
                "Create a payment session token",
                "Validates the payment request: vat + taxFreeAmount == totalCharge; all three > 0; "
                "cultureExpenseType one of a,b,c,d,f,g; cashReceiptType 'a'; clientBusinessNum 10 digits.",
                {"200": _envelope({"type": "object", "required": ["token"], "properties": {"token": {
                    "type": "string", "description": "May contain URL-special characters: URL-encode it."}}},
                    "The token for the widget."), **errors},
                requestBody={"required": True, "content": {"application/json": {
                    "schema": {"$ref": _REF + "PaymentRequest"}}}},
            )},
            "/purchase/confirm": {"post": _ops(
                "Confirm a payment",
                "Must arrive within 30 seconds of the widget returning the signature, or the payment is "
                "cancelled automatically. A 200 means the payment is complete. An unknown, expired, cancelled or "
                "already confirmed signature answers 400 (point3 documents only 400, 401 and 500 here).",
                {"200": _envelope({"$ref": _REF + "ConfirmedPayment"}, "The completed payment."), **errors},
                requestBody={"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["signature"],
                    "properties": {"signature": {"type": "string"}}}}}},
            )},
            "/api/token/refresh": {"post": _ops(
                "Rotate the merchant key",
                "Destroys the current key and issues a new one; the old key stops authenticating.",
                {"200": _envelope({"type": "object", "required": ["token"],
                                   "properties": {"token": {"type": "string", "description": "The new key."}}},
                                  "The new merchant key."), **errors},
            )},
            "/api/settlement": {"get": _ops(
                "Settleable balance",
                "Refreshed every 30 minutes (xx:00, xx:30); no history.",
                {"200": _envelope({"type": "object", "required": ["balance"], "properties": {"balance": amount}},
                                  "The current balance."), **errors},
            )},
            "/api/payments/{signature}": {"get": _ops(
                "Payment by signature", "One order.",
                {"200": _envelope(order_ref, "The order."), **errors_404},
                parameters=[_path_param("signature", "The payment signature.")],
            )},
            "/api/payments/orderid/{orderId}": {"get": _ops(
                "Payments by the merchant's order id",
                "orderIdFromClient is not unique, so this is a list (empty if none).",
                {"200": _envelope(orders, "The orders."), **errors},
                parameters=[_path_param("orderId", "orderIdFromClient.")],
            )},
            "/api/payments/userId/{userId}": {"get": _ops(
                "Latest payment of a user",
                "userId is clientGeneratedUserId. Documented as one order; the user's latest payment.",
                {"200": _envelope(order_ref, "The order."), **errors_404},
                parameters=[_path_param("userId", "clientGeneratedUserId.")],
            )},
            "/api/payments/date": {"get": _ops(
                "Payments by accept time, paged",
                "Filters on the accept time. startDate inclusive; endDate inclusive unless configured "
                "otherwise; empty endDate means until now. No total is returned: a page shorter than "
                "count ends the walk.",
                {"200": _envelope(orders, "One page of orders."), **errors},
                parameters=[
                    {"name": "startDate", "in": "query", "required": True, "schema": {"$ref": _REF + "ApiDateTime"}},
                    {"name": "endDate", "in": "query", "required": False, "schema": {"$ref": _REF + "ApiDateTime"}},
                    {"name": "page", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "default": 1}},
                    {"name": "count", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "default": 30}},
                ],
            )},
            "/api/payments/{signature}/cancel": {"post": _ops(
                "Cancel a payment",
                "Accepted at once; cancellations are processed every 5 minutes, so isCanceled flips at the "
                "next 5-minute boundary.",
                {"200": _envelope({"type": "object", "maxProperties": 0}, "Cancellation accepted."), **errors_404},
                parameters=[_path_param("signature", "The payment signature.")],
            )},
            "/": {"get": {
                "summary": "The payment widget",
                "description": "HTML page; on completion it posts {status, msg} to the iframe parent, "
                               "Point3WidgetBridge (Android), point3WidgetHandler (iOS) or ReactNativeWebView.",
                "tags": ["widget"],
                "security": [],
                "parameters": [{"name": "d", "in": "query", "required": True, "schema": {"type": "string"},
                                "description": "The URL-encoded payment token."}],
                "responses": {"200": {"description": "The widget.", "content": {"text/html": {}}},
                              "404": {"description": "Unknown token.", "content": {"text/html": {}}},
                              "410": {"description": "Token already used.", "content": {"text/html": {}}}},
            }},
        },
        "components": {
            "securitySchemes": {"merchantKey": {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": "'Basic <merchant secret key>': the key as issued, not base64 of user:password.",
            }},
            "responses": {f"E{status}": response for status, response in error_response.items()},
            "schemas": {
                "Envelope": {"type": "object", "required": ["statusCode", "message", "result"], "properties": {
                    "statusCode": {"type": "integer"}, "message": {"type": "string"}, "result": {}}},
                "ErrorEnvelope": {"allOf": [{"$ref": _REF + "Envelope"}],
                                  "properties": {"result": {"type": "null"}}},
                "ApiDateTime": {"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}$",
                                "description": "yyyy-MM-dd'T'HH:mm:ss in KST, no zone.",
                                "examples": ["2026-01-01T00:00:00"]},
                "CultureExpenseType": {"type": "string", "enum": list(CULTURE_EXPENSE_TYPES),
                                       "description": "; ".join(f"{k}: {v}" for k, v in CULTURE_EXPENSE_TYPES.items())},
                "PaymentRequest": {
                    "type": "object",
                    "required": ["clientGeneratedUserId", "totalCharge", "orderIdFromClient", "cultureExpenseType",
                                 "cashReceiptType", "clientBusinessNum", "clientNickname", "purchasingProductName",
                                 "taxFreeAmount", "vat"],
                    "properties": {
                        "clientGeneratedUserId": {"type": "string", "description": "Unique and stable per user."},
                        "totalCharge": {**amount, "exclusiveMinimum": 0},
                        "orderIdFromClient": {"type": "string"},
                        "cultureExpenseType": {"$ref": _REF + "CultureExpenseType"},
                        "cashReceiptType": {"type": "string", "enum": ["a"]},
                        "clientBusinessNum": {"type": "string", "pattern": "^[0-9]{10}$"},
                        "clientNickname": {"type": "string"},
                        "purchasingProductName": {"type": "string"},
                        "taxFreeAmount": {**amount, "exclusiveMinimum": 0},
                        "vat": {**amount, "exclusiveMinimum": 0},
                    },
                },
                "ConfirmedPayment": {"type": "object", "properties": order_fields,
                                     "required": list(order_fields)},
                "Order": {
                    "type": "object",
                    "description": "A payment record. Lookups may omit cultureExpenseType, paymentMethodType and "
                                   "the timestamps; point3's own examples have vat 0 and taxFreeAmount 0.",
                    "required": ["signature", "totalCharge", "taxFreeAmount", "vat", "isCanceled"],
                    "properties": {**order_fields, "isCanceled": {
                        "type": "boolean", "description": "True once a cancellation is processed."}},
                },
            },
        },
    }
