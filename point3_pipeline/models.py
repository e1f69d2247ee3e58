"""Typed records of the point3 API, and the contract a payment record must meet.

Amounts are Python ints (KRW); timestamps are aware datetimes in Asia/Seoul. `parse_order`
is strict where the books depend on it (signature, amounts, state, codes, timestamps) and
lenient elsewhere: absent optional fields are None and unknown fields stay in `raw`.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from .limits import DEFAULT_LIMITS

KST = ZoneInfo("Asia/Seoul")

CULTURE_EXPENSE_TYPES: dict[str, str] = {
    "a": "소득공제용 일반",
    "b": "소득공제용 공연",
    "c": "소득공제용 대중교통",
    "d": "지출증빙용 일반",
    "f": "지출증빙용 공연",
    "g": "지출증빙용 대중교통",
}
CASH_RECEIPT_TYPES = frozenset("a")  # 개인 (the only one today)

MAX_AMOUNT = 2**63 - 1  # the warehouse's BIGINT: no amount bound may exceed it


class RecordRejected(ValueError):
    """A record breaks the contract; the message is the reason kept in quarantine."""


@dataclass(slots=True)
class Order:
    """One payment ("order") as point3 reports it."""

    signature: str
    total_charge: int
    tax_free_amount: int
    vat: int
    is_canceled: bool
    user_id: str | None = None
    client_nickname: str | None = None
    purchasing_product_name: str | None = None
    order_id_from_client: str | None = None
    client_identification: str | None = None
    client_generated_user_id: str | None = None
    payment_method_type: str | None = None
    culture_expense_type: str | None = None
    # `YYYYMMDDHHmmss` as sent, already checked; the datetimes below are made on demand, since
    # building two of them per record was half of the contract check's cost.
    requested_text: str | None = None
    accepted_text: str | None = None
    # The record as stored, unknown fields included: sorted-key JSON, UTF-8, as orjson writes
    # it. Bytes: the sync hands them to Arrow and DuckDB as they are, with no str made (and
    # cached again as UTF-8) per record; the parsed record is not kept beside them (a dict per
    # record held until its window is stored), `raw` parses them again when asked.
    raw_bytes: bytes = field(default=b"", compare=False, repr=False)

    @property
    def raw(self) -> dict[str, Any]:
        return orjson.loads(self.raw_bytes) if self.raw_bytes else {}

    @property
    def raw_json(self) -> str:
        return self.raw_bytes.decode()

    @property
    def requested_at(self) -> dt.datetime | None:
        return None if self.requested_text is None else parse_timestamp(self.requested_text)

    @property
    def accepted_at(self) -> dt.datetime | None:
        return None if self.accepted_text is None else parse_timestamp(self.accepted_text)


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """The body of POST /purchase/token. Not validated here: point3 (or the sandbox) does."""

    client_generated_user_id: str
    total_charge: int
    order_id_from_client: str
    culture_expense_type: str
    cash_receipt_type: str
    client_business_num: str
    client_nickname: str
    purchasing_product_name: str
    tax_free_amount: int
    vat: int

    def to_json(self) -> dict[str, Any]:
        return {
            "clientGeneratedUserId": self.client_generated_user_id,
            "totalCharge": self.total_charge,
            "orderIdFromClient": self.order_id_from_client,
            "cultureExpenseType": self.culture_expense_type,
            "cashReceiptType": self.cash_receipt_type,
            "clientBusinessNum": self.client_business_num,
            "clientNickname": self.client_nickname,
            "purchasingProductName": self.purchasing_product_name,
            "taxFreeAmount": self.tax_free_amount,
            "vat": self.vat,
        }


def parse_timestamp(value: str) -> dt.datetime:
    """`YYYYMMDDHHmmss` in KST -> aware datetime. Raises ValueError on anything else."""
    # isascii() keeps out full-width digits, which isdigit() accepts.
    if not isinstance(value, str) or len(value) != 14 or not value.isascii() or not value.isdigit():
        raise ValueError(f"timestamp {value!r} is not YYYYMMDDHHmmss")
    # fromisoformat is C-fast and checks the calendar; this runs once per record synced.
    return dt.datetime.fromisoformat(
        f"{value[0:4]}-{value[4:6]}-{value[6:8]}T{value[8:10]}:{value[10:12]}:{value[12:14]}"
    ).replace(tzinfo=KST)


def format_api_datetime(moment: dt.datetime) -> str:
    """The date endpoint's `yyyy-MM-dd'T'HH:mm:ss`, in KST, no zone."""
    return moment.astimezone(KST).strftime("%Y-%m-%dT%H:%M:%S")


def parse_api_datetime(value: str) -> dt.datetime:
    """Inverse of format_api_datetime: a zone-less ISO time read as KST."""
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=KST)


def kst_day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=KST)


def _amount(raw: dict[str, Any], key: str, bound: int) -> int:
    value = raw.get(key)
    if type(value) is not int:  # bool is an int subclass, and floats/strings are not amounts
        if value is None and key not in raw:
            raise RecordRejected(f"missing amount {key}")
        raise RecordRejected(f"{key} is not an integer amount: {value!r:.40}")
    if value < 0:
        raise RecordRejected(f"{key} is negative: {str(value):.40}")
    if value > bound:
        corrupt = ", and beyond a 64-bit amount" if value > MAX_AMOUNT else ""
        raise RecordRejected(
            f"{key} {str(value):.40} is beyond the bound of {bound:,} won (setting max_amount_won){corrupt}"
        )
    return value


def _optional_string(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or type(value) is str:
        return value
    raise RecordRejected(f"{key} is not a string: {value!r:.40}")


@functools.lru_cache(maxsize=8192)
def _is_calendar_day(yyyymmdd: str) -> bool:
    # Years before 1900 are no payment time, and DuckDB cannot hand early ones back to Python.
    if yyyymmdd < "1900":
        return False
    try:
        dt.date(int(yyyymmdd[0:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return True


def _optional_time(raw: dict[str, Any], key: str) -> str | None:
    """The timestamp's text once it is a real KST time; the same check as parse_timestamp,
    without building a datetime (records of one day share their day's check)."""
    value = raw.get(key)
    if value is None or value == "":
        return None
    if not (
        isinstance(value, str) and len(value) == 14 and value.isascii() and value.isdigit()
        and _is_calendar_day(value[:8]) and value[8:10] <= "23" and value[10:12] <= "59" and value[12:14] <= "59"
    ):
        raise RecordRejected(f"{key} is not a YYYYMMDDHHmmss timestamp: {value!r:.40}")
    return value


def parse_order(raw: Any, max_amount: int = DEFAULT_LIMITS.max_amount_won) -> Order:
    """Check one payment record against the contract; raise RecordRejected with the reason.

    An amount above `max_amount` (won; at most MAX_AMOUNT) is no plausible payment and
    would overflow the warehouse's sums, so it is a rejection. vat + taxFreeAmount !=
    totalCharge is *not*: point3's own examples do it, so such records are stored and
    counted by a check instead.
    """
    # This runs once per record synced: a record every field of which is plainly right takes
    # the short path; anything else (a rejection, or a lenient case such as "" for absent)
    # takes the field-by-field path, which alone words the reasons.
    order = _plainly_valid_order(raw, max_amount)
    return order if order is not None else _checked_order(raw, max_amount)


# A plain timestamp's time of day, by lookup (a set of strings holds ASCII digits only, so
# full-width digits are no timestamp): cheaper than a regular expression, twice per record.
_HOURS = frozenset(f"{hour:02d}" for hour in range(24))
_MINUTES_SECONDS = frozenset(f"{minute:02d}{second:02d}" for minute in range(60) for second in range(60))
_STRING_OR_NONE = frozenset((str, type(None)))


@functools.lru_cache(maxsize=8192)
def _is_plain_day(yyyymmdd: str) -> bool:
    """ASCII digits making a calendar day (records of one day share their day's check)."""
    return yyyymmdd.isascii() and yyyymmdd.isdigit() and _is_calendar_day(yyyymmdd)


def _stored_json(raw: dict[str, Any]) -> bytes:
    """The record as stored: sorted-key JSON, in a bytes object of its own size. orjson's own
    result keeps a larger buffer behind it: holding a window's worth of those cost 6.7 us per
    record in allocation (measured) and far more memory, a copy 1 us with the dump."""
    return bytes(memoryview(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)))


def _plainly_valid_order(raw: Any, max_amount: int) -> Order | None:
    """The Order when every field is plainly within the contract, else None (the record may
    still be valid or not: _checked_order decides). Accepts a subset of what _checked_order
    accepts and builds the same Order (tests/test_models.py holds the two together)."""
    if type(raw) is not dict:
        return None
    get = raw.get
    signature, canceled, culture = get("signature"), get("isCanceled"), get("cultureExpenseType")
    total, tax_free, vat = get("totalCharge"), get("taxFreeAmount"), get("vat")
    requested, accepted = get("timeStampOnRequest"), get("timeStampOnAccept")
    strings = user, nickname, product, order_id, identification, generated_user, method = (
        get("userId"), get("clientNickname"), get("purchasingProductName"), get("orderIdFromClient"),
        get("clientIdentification"), get("clientGeneratedUserId"), get("paymentMethodType"))
    plain = _STRING_OR_NONE
    if not (
        type(signature) is str and signature.strip() and type(canceled) is bool
        and type(total) is int and type(tax_free) is int and type(vat) is int
        and 0 <= total <= max_amount and 0 <= tax_free <= max_amount and 0 <= vat <= max_amount
        and (culture is None or (type(culture) is str and culture in CULTURE_EXPENSE_TYPES))
        and (requested is None or (type(requested) is str and len(requested) == 14 and requested[8:10] in _HOURS
                                   and requested[10:] in _MINUTES_SECONDS and _is_plain_day(requested[:8])))
        and (accepted is None or (type(accepted) is str and len(accepted) == 14 and accepted[8:10] in _HOURS
                                  and accepted[10:] in _MINUTES_SECONDS and _is_plain_day(accepted[:8])))
        # unrolled: a third cheaper than a set test over map(type, ...)
        and type(user) in plain and type(nickname) in plain and type(product) in plain and type(order_id) in plain
        and type(identification) in plain and type(generated_user) in plain and type(method) in plain
    ):
        return None
    try:
        raw_bytes = _stored_json(raw)
    except (TypeError, orjson.JSONEncodeError):
        return None
    return Order(signature, total, tax_free, vat, canceled, *strings, culture, requested, accepted, raw_bytes)


def _checked_order(raw: Any, max_amount: int) -> Order:
    """parse_order field by field: the reason of any rejection."""
    if not isinstance(raw, dict):
        raise RecordRejected(f"record is a {type(raw).__name__}, not an object")
    signature = raw.get("signature")
    if type(signature) is not str or not signature.strip():
        if signature is None or (type(signature) is str and not signature.strip()):
            raise RecordRejected("missing signature")
        raise RecordRejected(f"signature is not a string: {signature!r:.40}")
    is_canceled = raw.get("isCanceled")
    if type(is_canceled) is not bool:
        raise RecordRejected("missing isCanceled" if is_canceled is None else f"isCanceled is not a boolean: {is_canceled!r:.40}")
    culture = raw.get("cultureExpenseType")
    if culture == "":
        culture = None
    elif culture is not None and (type(culture) is not str or culture not in CULTURE_EXPENSE_TYPES):
        raise RecordRejected(f"unknown cultureExpenseType code {culture!r:.40}")
    try:
        # Serialised here, once: a record that cannot be stored as JSON (a lone surrogate,
        # nesting beyond orjson's limit) is a contract break, not a crash later in the sync.
        raw_bytes = _stored_json(raw)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise RecordRejected(f"record cannot be stored as JSON: {exc}") from None
    # Positional, in field order: this runs once per record synced.
    return Order(
        signature,
        _amount(raw, "totalCharge", max_amount),
        _amount(raw, "taxFreeAmount", max_amount),
        _amount(raw, "vat", max_amount),
        is_canceled,
        _optional_string(raw, "userId"),
        _optional_string(raw, "clientNickname"),
        _optional_string(raw, "purchasingProductName"),
        _optional_string(raw, "orderIdFromClient"),
        _optional_string(raw, "clientIdentification"),
        _optional_string(raw, "clientGeneratedUserId"),
        _optional_string(raw, "paymentMethodType"),
        culture,
        _optional_time(raw, "timeStampOnRequest"),
        _optional_time(raw, "timeStampOnAccept"),
        raw_bytes,
    )
