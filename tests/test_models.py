"""The record contract (models.py) and the environment readers (config.py)."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from point3_pipeline import config
from point3_pipeline.config import ConfigError, SecretKey
from point3_pipeline.models import (
    KST,
    Order,
    PaymentRequest,
    RecordRejected,
    format_api_datetime,
    kst_day_start,
    parse_api_datetime,
    _checked_order,
    _plainly_valid_order,
    parse_order,
    parse_timestamp,
)
from tests.records import record

UTC = dt.timezone.utc


# --- parse_order ------------------------------------------------------------------------


def test_a_documented_record_parses():
    order = parse_order(record(cultureExpenseType="a", paymentMethodType="card",
                               timeStampOnRequest="20240301235959", timeStampOnAccept="20240302000004"))
    assert order == Order(
        signature="CnwGnosGohK2iu3cSrE68Ew4xVLr98Gl", total_charge=1000, tax_free_amount=900, vat=100,
        is_canceled=False, user_id="1", client_nickname="바이올렛 캔디 앤 젤리",
        purchasing_product_name="바이올렛 솜사탕맛 젤리", order_id_from_client="orderIdRandom",
        client_identification="widgetpaytester0", client_generated_user_id="IDIDIDIDIDIDIDIDIDIDIDIDIDIDT0",
        payment_method_type="card", culture_expense_type="a",
        requested_text="20240301235959", accepted_text="20240302000004",
    )
    assert order.requested_at == dt.datetime(2024, 3, 1, 23, 59, 59, tzinfo=KST)
    assert order.accepted_at == dt.datetime(2024, 3, 2, 0, 0, 4, tzinfo=KST)
    assert order.accepted_at.utcoffset() == dt.timedelta(hours=9)
    assert order.vat + order.tax_free_amount == order.total_charge


@pytest.mark.parametrize(("changes", "check"), [
    ({"userId": ..., "clientNickname": ..., "orderIdFromClient": ...},
     lambda o: o.user_id is None and o.client_nickname is None and o.order_id_from_client is None),
    ({"cultureExpenseType": ""}, lambda o: o.culture_expense_type is None),
    ({"cultureExpenseType": None}, lambda o: o.culture_expense_type is None),
    ({"timeStampOnAccept": ""}, lambda o: o.accepted_at is None),
    ({"timeStampOnAccept": None}, lambda o: o.accepted_at is None),
    ({"brandNewField": [1, 2]}, lambda o: o.raw["brandNewField"] == [1, 2]),
    ({"taxFreeAmount": 0, "vat": 0}, lambda o: o.vat + o.tax_free_amount != o.total_charge),  # the docs' own examples
    ({"totalCharge": 0, "taxFreeAmount": 0, "vat": 0}, lambda o: o.total_charge == 0),
    ({"isCanceled": True}, lambda o: o.is_canceled is True),
    ({"totalCharge": 10**10, "taxFreeAmount": 10**10, "vat": 10**10}, lambda o: o.total_charge == 10**10),  # the bound itself
])
def test_lenient_where_the_books_do_not_depend_on_it(changes, check):
    assert check(parse_order(record(**changes)))


@pytest.mark.parametrize(("raw", "reason"), [
    ([], "record is a list, not an object"),
    (None, "record is a NoneType, not an object"),
    (record(signature=...), "missing signature"),
    (record(signature=""), "missing signature"),
    (record(signature=None), "missing signature"),
    (record(signature=123), "signature is not a string: 123"),
    (record(signature="   "), "missing signature"),
    (record(isCanceled=...), "missing isCanceled"),
    (record(isCanceled="false"), "isCanceled is not a boolean: 'false'"),
    (record(isCanceled=0), "isCanceled is not a boolean: 0"),
    (record(totalCharge=...), "missing amount totalCharge"),
    (record(vat=...), "missing amount vat"),
    (record(totalCharge="1000"), "totalCharge is not an integer amount: '1000'"),
    (record(totalCharge=1000.0), "totalCharge is not an integer amount: 1000.0"),
    (record(taxFreeAmount=True), "taxFreeAmount is not an integer amount: True"),
    (record(vat=None), "vat is not an integer amount: None"),
    (record(vat=-1), "vat is negative: -1"),
    (record(totalCharge=2**63),
     "totalCharge 9223372036854775808 is beyond the bound of 10,000,000,000 won (setting max_amount_won), "
     "and beyond a 64-bit amount"),
    (record(vat=-(2**63)), "vat is negative: -9223372036854775808"),
    (record(cultureExpenseType=["a"]), "unknown cultureExpenseType code ['a']"),
    (record(cultureExpenseType={"a": 1}), "unknown cultureExpenseType code {'a': 1}"),
    (record(timeStampOnAccept="00010101000000"), "timeStampOnAccept is not a YYYYMMDDHHmmss timestamp"),
    (record(purchasingProductName="lone \ud800"), "record cannot be stored as JSON"),
    (record(userId=1), "userId is not a string: 1"),
    (record(paymentMethodType={"card": 1}), "paymentMethodType is not a string"),
    (record(cultureExpenseType="e"), "unknown cultureExpenseType code 'e'"),
    (record(cultureExpenseType="A"), "unknown cultureExpenseType code 'A'"),
    (record(cultureExpenseType=1), "unknown cultureExpenseType code 1"),
    (record(timeStampOnRequest="2024-03-01T12:00:00"), "timeStampOnRequest is not a YYYYMMDDHHmmss timestamp"),
    (record(timeStampOnAccept="20241301000000"), "timeStampOnAccept is not a YYYYMMDDHHmmss timestamp"),
    (record(timeStampOnAccept=20240301120000), "timeStampOnAccept is not a YYYYMMDDHHmmss timestamp"),
])
def test_contract_breaks_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(RecordRejected) as info:
        parse_order(raw)
    assert str(info.value).startswith(reason)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("key", ["totalCharge", "taxFreeAmount", "vat"])
def test_an_amount_beyond_the_bound_is_rejected_naming_field_value_and_setting(key):
    with pytest.raises(RecordRejected) as info:
        parse_order(record(**{key: 10_000_000_001}))
    assert str(info.value) == f"{key} 10000000001 is beyond the bound of 10,000,000,000 won (setting max_amount_won)"
    assert getattr(parse_order(record(**{key: 10_000_000_001}), max_amount=10**11), {
        "totalCharge": "total_charge", "taxFreeAmount": "tax_free_amount", "vat": "vat"}[key]) == 10_000_000_001
    with pytest.raises(RecordRejected, match=f"{key} 1001 is beyond the bound of 1,000 won"):
        parse_order(record(**{"totalCharge": 1000, "taxFreeAmount": 1000, "vat": 1000, key: 1001}), max_amount=1000)


@pytest.mark.parametrize("value", ["9" * 500, 10**500, -(10**500)])
def test_long_bad_values_are_cut_in_reasons(value):
    with pytest.raises(RecordRejected) as info:
        parse_order(record(totalCharge=value))
    assert len(str(info.value)) < 120


# --- time helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("20240301120000", dt.datetime(2024, 3, 1, 12, tzinfo=KST)),
    ("20240229235959", dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=KST)),
    ("19991231000000", dt.datetime(1999, 12, 31, tzinfo=KST)),
])
def test_parse_timestamp(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected and parsed.tzinfo is KST
    assert parsed.strftime("%Y%m%d%H%M%S") == text


BAD_TIMESTAMPS = [
    "2024030112000", "202403011200000", "2024-03-01 12:00", "20240230120000", "20230229000000", "20241301000000",
    "20240001000000", "20240301250000", "20240301240000", "20240301236000", "20240301235960", "2024030112000a",
    " 20240301120000", "２０２４０３０１１２００００", 20240301120000,
]


@pytest.mark.parametrize("bad", ["", None, *BAD_TIMESTAMPS])
def test_parse_timestamp_refuses(bad):
    with pytest.raises(ValueError):
        parse_timestamp(bad)


@pytest.mark.parametrize("bad", BAD_TIMESTAMPS)
def test_the_contract_check_refuses_the_timestamps_parse_timestamp_refuses(bad):
    # parse_order checks timestamps without building datetimes: it must agree with parse_timestamp.
    with pytest.raises(RecordRejected, match="timeStampOnAccept is not a YYYYMMDDHHmmss timestamp"):
        parse_order(record(timeStampOnAccept=bad))


@pytest.mark.parametrize("good", ["20240229235959", "20240101000000", "19991231235959"])
def test_the_contract_check_accepts_real_times(good):
    assert parse_order(record(timeStampOnAccept=good)).accepted_at == parse_timestamp(good)


PLAIN = {"cultureExpenseType": "a", "paymentMethodType": "card", "timeStampOnRequest": "20240301235959",
         "timeStampOnAccept": "20240302000004"}


@pytest.mark.parametrize("changes", [
    {}, PLAIN, {"cultureExpenseType": ""}, {"cultureExpenseType": None}, {"timeStampOnAccept": ""},
    {"signature": "   "}, {"signature": " x "}, {"signature": 1}, {"isCanceled": 0}, {"isCanceled": ...},
    {"totalCharge": -1}, {"vat": 10**10 + 1}, {"vat": 10**10}, {"taxFreeAmount": True}, {"totalCharge": 1000.0},
    {"totalCharge": ...}, {"cultureExpenseType": "e"}, {"cultureExpenseType": ["a"]}, {"userId": 1},
    {"clientNickname": ...}, {"purchasingProductName": "lone \ud800"}, {"brandNewField": [1, 2]},
    {"timeStampOnAccept": "00010101000000"}, {"timeStampOnAccept": "18991231235959"},
    *({"timeStampOnAccept": bad} for bad in BAD_TIMESTAMPS), *({"timeStampOnRequest": bad} for bad in BAD_TIMESTAMPS),
])
def test_the_short_path_accepts_only_what_the_full_check_accepts_and_builds_the_same_order(changes):
    raw = record(**changes)
    short = _plainly_valid_order(raw, 10**10)
    try:
        checked = _checked_order(raw, 10**10)
    except RecordRejected:
        assert short is None
        return
    assert short is None or (short == checked and short.raw_bytes == checked.raw_bytes)


def test_a_plain_record_takes_the_short_path():
    order = _plainly_valid_order(record(**PLAIN), 10**10)
    assert order is not None and order == parse_order(record(**PLAIN))
    assert list(orjson.loads(order.raw_bytes)) == sorted(record(**PLAIN))


@pytest.mark.parametrize(("moment", "api", "stamp"), [
    (dt.datetime(2024, 3, 1, 12, tzinfo=KST), "2024-03-01T12:00:00", "20240301120000"),
    (dt.datetime(2024, 2, 29, 15, 30, tzinfo=UTC), "2024-03-01T00:30:00", "20240301003000"),  # crosses midnight KST
    (dt.datetime(2024, 12, 31, 16, 0, 1, tzinfo=UTC), "2025-01-01T01:00:01", "20250101010001"),
    (dt.datetime(2024, 3, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))), "2024-03-01T14:00:00", "20240301140000"),
])
def test_formats_are_kst_without_zone(moment, api, stamp):
    assert format_api_datetime(moment) == api
    assert moment.astimezone(KST).strftime("%Y%m%d%H%M%S") == stamp
    assert parse_api_datetime(api) == moment


@pytest.mark.parametrize("bad", ["2024-03-01", "2024-03-01T12:00:00+09:00", "2024-03-01 12:00:00", ""])
def test_parse_api_datetime_refuses(bad):
    with pytest.raises(ValueError):
        parse_api_datetime(bad)


def test_kst_day_start():
    start = kst_day_start(dt.date(2024, 3, 1))
    assert start == dt.datetime(2024, 2, 29, 15, tzinfo=UTC)
    assert format_api_datetime(start) == "2024-03-01T00:00:00"


def test_payment_request_json_uses_the_api_names():
    request = PaymentRequest("user-1", 1000, "order-1", "a", "a", "1428801897", "가게", "젤리", 900, 100)
    assert request.to_json() == {
        "clientGeneratedUserId": "user-1", "totalCharge": 1000, "orderIdFromClient": "order-1",
        "cultureExpenseType": "a", "cashReceiptType": "a", "clientBusinessNum": "1428801897",
        "clientNickname": "가게", "purchasingProductName": "젤리", "taxFreeAmount": 900, "vat": 100,
    }


# --- config.py ------------------------------------------------------------------------------


def test_secret_key_never_shows_itself():
    key = SecretKey("sk_live_visible_nowhere")
    assert "sk_live" not in repr(key) and "sk_live" not in str(key) and "sk_live" not in f"{key}"
    assert key.reveal() == "sk_live_visible_nowhere"
    assert key == SecretKey("sk_live_visible_nowhere") and key != SecretKey("other")
    assert key != "sk_live_visible_nowhere"
    assert len({key, SecretKey("sk_live_visible_nowhere")}) == 1


@pytest.mark.parametrize(("reader", "env", "expected"), [
    (config.api_url, {"POINT3_API_URL": "http://127.0.0.1:8030/"}, "http://127.0.0.1:8030"),
    (config.api_url, {"POINT3_API_URL": "  https://api.point3.io/v1  "}, "https://api.point3.io/v1"),
    (config.secret_key, {"POINT3_SECRET_KEY": " sk_1 "}, SecretKey("sk_1")),
    (config.secret_key, {"POINT3_SECRET_KEY": "sk_env", "POINT3_SECRET_KEY_FILE": "/nonexistent"}, SecretKey("sk_env")),
    (config.key_file, {"POINT3_SECRET_KEY_FILE": "keys/point3.key"}, config.Path("keys/point3.key")),
    (config.warehouse_path, {"POINT3_WAREHOUSE": "warehouse/point3.duckdb"}, config.Path("warehouse/point3.duckdb")),
    (config.reports_dir, {"POINT3_REPORTS_DIR": "reports"}, config.Path("reports")),
    (config.start_date, {"POINT3_START_DATE": "2024-01-01"}, dt.date(2024, 1, 1)),
])
def test_env_readers(reader, env, expected):
    assert reader(env) == expected


def test_secret_key_from_file(tmp_path):
    path = tmp_path / "key"
    path.write_text("  sk_from_file\n")
    assert config.secret_key({"POINT3_SECRET_KEY_FILE": str(path)}) == SecretKey("sk_from_file")
    assert config.secret_key({"POINT3_SECRET_KEY": "  ", "POINT3_SECRET_KEY_FILE": str(path)}) == SecretKey("sk_from_file")


@pytest.mark.parametrize(("reader", "env", "variable"), [
    (config.api_url, {}, "POINT3_API_URL"),
    (config.api_url, {"POINT3_API_URL": "   "}, "POINT3_API_URL"),
    (config.api_url, {"POINT3_API_URL": "127.0.0.1:8030"}, "POINT3_API_URL"),
    (config.api_url, {"POINT3_API_URL": "ftp://point3.io"}, "POINT3_API_URL"),
    (config.api_url, {"POINT3_API_URL": "http://"}, "POINT3_API_URL"),
    (config.secret_key, {}, "POINT3_SECRET_KEY"),
    (config.secret_key, {"POINT3_SECRET_KEY": ""}, "POINT3_SECRET_KEY"),
    (config.secret_key, {"POINT3_SECRET_KEY_FILE": "/nonexistent/point3.key"}, "POINT3_SECRET_KEY_FILE"),
    (config.key_file, {}, "POINT3_SECRET_KEY_FILE"),
    (config.warehouse_path, {}, "POINT3_WAREHOUSE"),
    (config.reports_dir, {}, "POINT3_REPORTS_DIR"),
    (config.start_date, {}, "POINT3_START_DATE"),
    (config.start_date, {"POINT3_START_DATE": "01/03/2024"}, "POINT3_START_DATE"),
    (config.start_date, {"POINT3_START_DATE": "2024-02-30"}, "POINT3_START_DATE"),
])
def test_missing_or_malformed_settings_name_the_variable(reader, env, variable):
    with pytest.raises(ConfigError) as info:
        reader(env)
    assert variable in str(info.value)


@pytest.mark.parametrize(("reader", "variable", "target", "what"), [
    (config.secret_key, "POINT3_SECRET_KEY_FILE", "empty.key", "empty"),
    (config.secret_key, "POINT3_SECRET_KEY_FILE", ".", "cannot be read"),
    (config.warehouse_path, "POINT3_WAREHOUSE", ".", "directory"),
    (config.reports_dir, "POINT3_REPORTS_DIR", "empty.key", "is a file"),
])
def test_settings_pointing_at_the_wrong_kind_of_path(tmp_path, reader, variable, target, what):
    (tmp_path / "empty.key").write_text("\n")
    with pytest.raises(ConfigError) as info:
        reader({variable: str(tmp_path / target)})
    assert variable in str(info.value) and what in str(info.value)
