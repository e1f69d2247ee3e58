"""The sandbox's HTTP surface: point3's documented API, the widget, and /_sandbox admin.

Every API answer is point3's envelope, errors included. API endpoints pass through
`api`: latency, merchant-key check, the stall gate, injected 429/500, then the handler, then
(maybe) a truncated body, sent whole or (maybe) dripped. The widget and admin endpoints take no merchant key.

The key picks the merchant (merchants.py): every API answer, and the faults and latency it
meets, are that merchant's alone. Admin endpoints about one merchant's data take
`merchant=N` (1..N) or `merchant=<its key>` in the query; with one merchant it may be left out,
and a change (faults, settlement terms, injected raw records cleared) without it applies to
every merchant.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from point3_pipeline.models import format_api_datetime, parse_api_datetime
from point3_pipeline.sandbox.errors import ApiError
from point3_pipeline.sandbox.faults import Faults
from point3_pipeline.sandbox.hostile import dripped, garbage_body
from point3_pipeline.sandbox.merchants import SandboxMerchants
from point3_pipeline.sandbox.openapi import openapi_document
from point3_pipeline.sandbox.rules import payment_request_problems
from point3_pipeline.sandbox.settlement import SettlementTerms
from point3_pipeline.sandbox.stall import DATE_PATH, StallMatch
from point3_pipeline.sandbox.state import SandboxState
from point3_pipeline.sandbox.widget import APPROVE_PATH, error_page, payment_page

DEFAULT_COUNT = 30
MAX_ADMIN_WAIT_SECONDS = 300.0
JSON = "application/json"
_ORDERS_HEAD = b'{"statusCode":200,"message":"success","result":{"orders":['
_ORDERS_TAIL = b"]}}"

Handler = Callable[[Request], Awaitable[Response]]
ApiHandler = Callable[[Request, SandboxState], Awaitable[Response]]


def envelope(status: int, message: str, result: Any = None, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"statusCode": status, "message": message, "result": result})
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def ok(result: Any) -> Response:
    return envelope(200, "success", result)


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise ApiError(400, "request body is not valid JSON") from None


async def _json_object(request: Request) -> dict[str, Any]:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _presented_key(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(401, "missing Authorization header: send 'Authorization: Basic <merchant secret key>'")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "basic" or not key.strip():
        raise ApiError(401, "Authorization header must be 'Basic <merchant secret key>'")
    return key.strip()


def _merchant(merchants: SandboxMerchants, request: Request) -> SandboxState:
    """The merchant whose key the request carries; ApiError 401 otherwise."""
    state = merchants.by_key(_presented_key(request))
    if state is None:
        raise ApiError(401, "merchant secret key is not valid (wrong, or replaced by /api/token/refresh)")
    return state


def _signature_param(request: Request) -> str:
    return request.path_params["signature"]


def _positive_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ApiError(400, f"{name} must be an integer >= 1, not {raw[:40]!r}")
    return int(raw)


def _date_param(request: Request, name: str, required: bool) -> dt.datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise ApiError(400, f"{name} is required, as yyyy-MM-ddTHH:mm:ss (KST)")
        return None
    try:
        return parse_api_datetime(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be yyyy-MM-ddTHH:mm:ss (KST), not {raw[:40]!r}") from None


def create_app(merchants: SandboxMerchants) -> Starlette:
    first = merchants.first

    async def answer(request: Request, handler: ApiHandler, state: SandboxState | None, faults: Faults) -> Response:
        try:
            if state is None:
                _merchant(merchants, request)  # raises the 401 that says what is wrong
            gate = state.stall_gate
            if not await gate.hold(request.url.path, request.query_params, state.profile.number):
                return envelope(503, f"held by the sandbox's stall gate for {gate.hold_seconds:g} s; "
                                     "released automatically")
            if state.roll(faults.rate_limit_rate):
                return envelope(429, "too many requests; retry later", headers={
                    "Retry-After": str(faults.retry_after_seconds)})
            if state.roll(faults.error_rate):
                return envelope(500, "internal server error (injected by the sandbox)")
            return await handler(request, state)
        except ApiError as exc:
            return envelope(exc.status, exc.message)

    def api(handler: ApiHandler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                state = _merchant(merchants, request)
            except ApiError:
                state = None  # answered 401, after the first merchant's latency
            faults = (state or first).faults
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            response = await answer(request, handler, state, faults)
            if response.status_code == 200 and (state or first).roll(faults.truncate_rate):
                # A connection cut mid-body: a consistent Content-Length, invalid JSON.
                response = Response(response.body[: len(response.body) // 2], media_type=JSON)
            if faults.drip_bytes_per_second:
                # The headers (with the true Content-Length) at once, then the body a few bytes at a time.
                return StreamingResponse(dripped(response.body, faults.drip_bytes_per_second),
                                         response.status_code, headers=dict(response.headers))
            return response
        return endpoint

    async def purchase_token(request: Request, state: SandboxState) -> Response:
        body = await _json_body(request)
        problems = payment_request_problems(body)
        if problems:
            raise ApiError(400, "; ".join(problems))
        return ok({"token": state.create_token(body)})

    async def purchase_confirm(request: Request, state: SandboxState) -> Response:
        body = await _json_object(request)
        signature = body.get("signature")
        if not isinstance(signature, str) or not signature:
            raise ApiError(400, "signature is required (a string)")
        return ok(state.confirm(signature))

    async def token_refresh(request: Request, state: SandboxState) -> Response:
        return ok({"token": state.rotate_key()})

    async def settlement(request: Request, state: SandboxState) -> Response:
        return ok({"balance": state.settlement_balance()})

    async def payment_by_signature(request: Request, state: SandboxState) -> Response:
        return ok(state.payment(_signature_param(request)))

    async def payments_by_order(request: Request, state: SandboxState) -> Response:
        return ok({"orders": state.payments_by_order(request.path_params["order_id"])})

    async def payment_by_user(request: Request, state: SandboxState) -> Response:
        return ok(state.latest_payment_of_user(request.path_params["user_id"]))

    async def payments_by_date(request: Request, state: SandboxState) -> Response:
        start = _date_param(request, "startDate", required=True)
        end = _date_param(request, "endDate", required=False)
        if end is not None and end < start:
            raise ApiError(400, "endDate must not be before startDate")
        page = _positive_int(request, "page", 1)
        count = _positive_int(request, "count", DEFAULT_COUNT)
        if state.faults.garbage_body_bytes:
            return Response(garbage_body(state.faults.garbage_body_bytes), media_type=JSON)
        records = state.page(start, end, page, count)
        return Response(_ORDERS_HEAD + b",".join(records) + _ORDERS_TAIL, media_type=JSON)

    async def cancel(request: Request, state: SandboxState) -> Response:
        state.cancel(_signature_param(request))
        return ok({})

    async def widget_page(request: Request) -> Response:
        token = request.query_params.get("d")
        if not token:
            return HTMLResponse(error_page("결제 정보가 없습니다", "결제 토큰(d)이 주소에 없습니다."), status_code=400)
        try:
            session = merchants.by_token(token).session(token)
        except ApiError as exc:
            title = "이미 사용된 결제 토큰입니다" if exc.status == 410 else "결제 정보를 찾을 수 없습니다"
            return HTMLResponse(error_page(title, exc.message), status_code=exc.status)
        request_body = session.request
        return HTMLResponse(payment_page(token, request_body["clientNickname"],
                                         request_body["purchasingProductName"], request_body["totalCharge"]))

    async def widget_approve(request: Request) -> Response:
        try:
            body = await _json_object(request)
            token = body.get("token")
            if not isinstance(token, str) or not token:
                raise ApiError(400, "token is required (a string)")
            return ok({"signature": merchants.by_token(token).approve(token)})
        except ApiError as exc:
            return envelope(exc.status, exc.message)

    async def openapi(request: Request) -> Response:
        return Response(orjson.dumps(openapi_document()), media_type=JSON)

    def admin(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return envelope(exc.status, exc.message)
            except ValueError as exc:
                return envelope(400, str(exc))
        return endpoint

    def merchant_param(request: Request) -> str | None:
        return request.query_params.get("merchant")

    def one(request: Request) -> SandboxState:
        return merchants.one(merchant_param(request))

    async def admin_faults(request: Request) -> Response:
        targets = merchants.targets(merchant_param(request))
        if request.method == "POST":
            changes = await _json_object(request)
            targets[0].faults.changed(**changes)  # a mistake changes no merchant
            for state in targets:
                state.set_faults(**changes)
        return ok(targets[0].faults.to_json())

    def clock_json() -> dict[str, Any]:
        return {"now": format_api_datetime(first.clock.now()), "speed": first.clock.speed}

    async def admin_clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _json_object(request)
            unknown = sorted(set(body) - {"now", "advance_seconds", "speed"})
            if unknown:
                raise ApiError(400, f"unknown clock field(s) {', '.join(unknown)}; use now, advance_seconds, speed")
            if "now" in body:
                if not isinstance(body["now"], str):
                    raise ApiError(400, "now must be yyyy-MM-ddTHH:mm:ss (KST)")
                first.clock.set_now(parse_api_datetime(body["now"]))
            if "advance_seconds" in body:
                seconds = body["advance_seconds"]
                if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
                    raise ApiError(400, "advance_seconds must be a number")
                first.clock.advance(seconds)
            if "speed" in body:
                first.clock.speed = body["speed"]
        return ok(clock_json())

    async def admin_records(request: Request) -> Response:
        body = await _json_object(request)
        records, at = body.get("records"), body.get("at")
        if not isinstance(records, list):
            raise ApiError(400, "records must be a list")
        if not isinstance(at, str):
            raise ApiError(400, "at must be yyyy-MM-ddTHH:mm:ss (KST)")
        one(request).inject_records(records, parse_api_datetime(at))
        return ok({"injected": len(records)})

    async def admin_stall(request: Request) -> Response:
        gate = first.stall_gate  # one gate: a match may name the merchant it holds
        if request.method == "POST":
            body = await _json_object(request)
            unknown = sorted(set(body) - {"path", "startDate", "page", "merchant"})
            if unknown:
                raise ApiError(400, f"unknown stall field(s) {', '.join(unknown)}; use path, startDate, page, merchant")
            gate.arm(StallMatch(body.get("path", DATE_PATH), body.get("startDate"), body.get("page"), body.get("merchant")))
        wait = request.query_params.get("wait_seconds")
        if wait is not None:
            try:
                seconds = min(float(wait), MAX_ADMIN_WAIT_SECONDS)
            except ValueError:
                raise ApiError(400, f"wait_seconds must be a number, not {wait[:40]!r}") from None
            await asyncio.to_thread(gate.wait_held, seconds)  # a worker thread: the loop keeps serving
        armed = gate.armed
        return ok({"held": gate.held, "armed": None if armed is None else armed.to_json()})

    async def admin_stall_release(request: Request) -> Response:
        return ok({"released": first.stall_gate.release()})

    async def admin_inject(request: Request) -> Response:
        if request.method == "DELETE":
            for state in merchants.targets(merchant_param(request)):
                state.clear_injected_raw()
            return ok({})
        body = await _json_object(request)
        unknown = sorted(set(body) - {"day", "raw_base64", "copies"})
        if unknown:
            raise ApiError(400, f"unknown inject field(s) {', '.join(unknown)}; use day, raw_base64, copies")
        day, encoded, copies = body.get("day"), body.get("raw_base64"), body.get("copies", 1)
        try:
            day = dt.date.fromisoformat(day) if isinstance(day, str) and len(day) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise ApiError(400, f"day must be a date as YYYY-MM-DD, not {body.get('day')!r:.40}")
        if not isinstance(encoded, str):
            raise ApiError(400, "raw_base64 must be the record's bytes in standard base64")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ApiError(400, "raw_base64 is not valid standard base64") from None
        one(request).inject_raw(day, raw, copies)  # ValueError -> 400 with its reason
        return ok({"day": day.isoformat(), "copies": copies, "bytes": len(raw)})

    async def admin_orders(request: Request) -> Response:
        return ok({"orders": one(request).orders()})

    async def admin_payments(request: Request) -> Response:
        return ok(one(request).add_payment(**await _json_object(request)))

    async def admin_settlement(request: Request) -> Response:
        if request.method == "GET":
            return ok(one(request).settlement_terms.to_json())
        targets = merchants.targets(merchant_param(request))
        changes = await _json_object(request)
        SettlementTerms.from_json({**targets[0].settlement_terms.to_json(), **changes})  # a mistake changes no merchant
        for state in targets:
            state.set_settlement_terms(**changes)
        return ok(targets[0].settlement_terms.to_json())

    def _range(request: Request) -> tuple[dt.datetime, dt.datetime]:
        start = _date_param(request, "startDate", required=True)
        end = _date_param(request, "endDate", required=True)
        if end < start:
            raise ApiError(400, "endDate must not be before startDate")
        return start, end

    async def admin_balance_history(request: Request) -> Response:
        start, end = _range(request)
        lines = ["observed_at,balance"]
        lines += [f"{slot.isoformat()},{balance}" for slot, balance in one(request).balance_history(start, end)]
        return Response("\n".join(lines) + "\n", media_type="text/csv; charset=utf-8")

    async def admin_deposits(request: Request) -> Response:
        start, end = _range(request)
        encoding = request.query_params.get("encoding", "utf-8-sig")
        if encoding not in ("utf-8", "utf-8-sig", "cp949"):
            raise ApiError(400, f"encoding must be utf-8, utf-8-sig or cp949, not {encoding[:20]!r}")
        text = one(request).deposits_csv(start, end)
        charset = "cp949" if encoding == "cp949" else "utf-8"
        return Response(text.encode(encoding), media_type=f"text/csv; charset={charset}")

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = "method not allowed" if status == 405 else f"no such endpoint: {request.url.path[:200]}"
        return envelope(status, message)

    async def internal_error(request: Request, exc: Exception) -> Response:
        return envelope(500, "internal server error")

    routes = [
        Route("/purchase/token", api(purchase_token), methods=["POST"]),
        Route("/purchase/confirm", api(purchase_confirm), methods=["POST"]),
        Route("/api/token/refresh", api(token_refresh), methods=["POST"]),
        Route("/api/settlement", api(settlement), methods=["GET"]),
        # /date and the two prefixed lookups come before /{signature}, which would match them.
        Route(DATE_PATH, api(payments_by_date), methods=["GET"]),
        Route("/api/payments/orderid/{order_id}", api(payments_by_order), methods=["GET"]),
        Route("/api/payments/userId/{user_id}", api(payment_by_user), methods=["GET"]),
        Route("/api/payments/{signature}/cancel", api(cancel), methods=["POST"]),
        Route("/api/payments/{signature}", api(payment_by_signature), methods=["GET"]),
        Route("/", widget_page, methods=["GET"]),
        Route(APPROVE_PATH, widget_approve, methods=["POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/_sandbox/faults", admin(admin_faults), methods=["GET", "POST"]),
        Route("/_sandbox/clock", admin(admin_clock), methods=["GET", "POST"]),
        Route("/_sandbox/records", admin(admin_records), methods=["POST"]),
        Route("/_sandbox/stall", admin(admin_stall), methods=["GET", "POST"]),
        Route("/_sandbox/stall/release", admin(admin_stall_release), methods=["POST"]),
        Route("/_sandbox/inject", admin(admin_inject), methods=["POST", "DELETE"]),
        Route("/_sandbox/orders", admin(admin_orders), methods=["GET"]),
        Route("/_sandbox/payments", admin(admin_payments), methods=["POST"]),
        Route("/_sandbox/settlement", admin(admin_settlement), methods=["GET", "POST"]),
        # startDate and endDate (KST, endDate exclusive) as the date endpoint takes them
        Route("/_sandbox/balance-history.csv", admin(admin_balance_history), methods=["GET"]),
        Route("/_sandbox/deposits.csv", admin(admin_deposits), methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found, Exception: internal_error})
