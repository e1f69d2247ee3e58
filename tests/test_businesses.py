"""The businesses settings file: 사업자등록번호 checksum, validation, env, the declarations table."""

from __future__ import annotations

from pathlib import Path

import pytest

from point3_pipeline.businesses import (
    Business,
    businesses_from_env,
    is_valid_registration_number,
    load_businesses,
    load_declarations,
    parse_businesses,
    registration_check_digit,
)
from point3_pipeline.config import ConfigError
from point3_pipeline.sandbox.data import CATEGORIES
from point3_pipeline.warehouse import Warehouse
from tests.tax_fixtures import DEMO_BUSINESSES

# Published numbers of well-known companies (삼성전자, 네이버, 카카오): valid by construction.
KNOWN_VALID = ("124-81-00998", "220-81-62517", "120-81-47521")


@pytest.mark.parametrize("number", KNOWN_VALID + tuple(n.replace("-", "") for n in KNOWN_VALID))
def test_known_registration_numbers_are_valid(number):
    assert is_valid_registration_number(number)
    assert registration_check_digit(number.replace("-", "")[:9]) == int(number[-1])


@pytest.mark.parametrize("number", [
    "124-81-00997",  # last digit off by one
    "220-81-62516",
    "124-81-0099",  # nine digits
    "124-81-009980",  # eleven
    "12a-81-00998",
    "124 81 00998",
    "",
])
def test_invalid_registration_numbers(number):
    assert not is_valid_registration_number(number)


def test_the_ninth_digit_counts_twice():
    # 5 × the ninth digit adds its tens: changing only the ninth digit changes the check digit.
    assert {registration_check_digit(f"12481009{d}") for d in range(10)} == set(range(10))


def entry(**changes):
    base = {"id": "shop", "name": "가게", "registration_number": "124-81-00998", "taxpayer_type": "일반과세자",
            "sales": "by_vat", "client_nickname": "가게"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_a_valid_file():
    businesses = parse_businesses({"business": [entry(), entry(
        id="books", name="책방", registration_number="2208162517", taxpayer_type="면세사업자", sales="all_exempt",
        client_nickname=["책방", "책방 2호점"], client_identification="ident")]}, "b.toml")
    assert businesses == [
        Business("shop", "가게", "1248100998", "일반과세자", "by_vat", ("가게",)),
        Business("books", "책방", "2208162517", "면세사업자", "all_exempt", ("책방", "책방 2호점"), "ident"),
    ]


@pytest.mark.parametrize(("changes", "message"), [
    ({"name": ...}, "b.toml: business 1 (shop): name must be a non-empty string."),
    ({"id": "가게"}, "b.toml: business 1 (가게): id must be 1 to 64 letters, digits, '-' or '_', not '가게'."),
    ({"registration_number": "124-81-0099"}, "registration_number must be 10 digits (000-00-00000), not '124-81-0099'."),
    ({"registration_number": "124-81-00997"}, "registration_number 124-81-00997 fails the 사업자등록번호 checksum"),
    ({"registration_number": 1248100998}, "registration_number must be a non-empty string."),
    ({"taxpayer_type": "법인"}, "taxpayer_type must be one of 일반과세자, 간이과세자, 면세사업자, not '법인'."),
    ({"sales": "taxable"}, "sales must be one of all_taxable, all_exempt, by_vat, not 'taxable'."),
    ({"taxpayer_type": "면세사업자"}, "a 면세사업자 has no taxable sales, so sales must be 'all_exempt', not 'by_vat'."),
    ({"client_nickname": []}, "client_nickname must be a non-empty string or a list of them."),
    ({"client_nickname": ["가게", 3]}, "client_nickname must be a non-empty string or a list of them."),
    ({"client_identification": ""}, "client_identification must be a non-empty string."),
    ({"nickname": "가게"}, "b.toml: business 1 (shop): unknown field 'nickname'"),
])
def test_each_mistake_is_one_sentence_naming_file_entry_and_field(changes, message):
    with pytest.raises(ConfigError) as caught:
        parse_businesses({"business": [entry(**changes)]}, "b.toml")
    assert message in str(caught.value)


def test_every_mistake_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_businesses({"business": [entry(name=""), entry(id="two", sales="x")]}, "b.toml")
    message = str(caught.value)
    assert "business 1 (shop): name" in message and "business 2 (two): sales" in message


@pytest.mark.parametrize(("second", "message"), [
    (entry(registration_number="2208162517", client_nickname="다른 가게"), "business id 'shop' is used twice"),
    (entry(id="two", client_nickname="다른 가게"), "businesses shop and two have the same registration_number"),
    (entry(id="two", registration_number="2208162517"), "businesses shop and two both claim client_nickname '가게'"),
])
def test_entries_must_not_collide(second, message):
    with pytest.raises(ConfigError, match=message):
        parse_businesses({"business": [entry(), second]}, "b.toml")


def test_a_nickname_with_and_without_identification_is_not_a_collision():
    businesses = parse_businesses(
        {"business": [entry(), entry(id="two", registration_number="2208162517", client_identification="x")]}, "b.toml"
    )
    assert [b.id for b in businesses] == ["shop", "two"]


@pytest.mark.parametrize(("data", "message"), [
    ({"businesses": []}, "unknown top-level key 'businesses'"),
    ({"business": {"id": "x"}}, "'business' must be a list of [[business]] tables"),
])
def test_file_shape(data, message):
    with pytest.raises(ConfigError) as caught:
        parse_businesses(data, "b.toml")
    assert message in str(caught.value)


@pytest.mark.parametrize(("content", "message"), [
    (None, "POINT3_BUSINESSES points to {path}, which cannot be read"),
    (b"[[business]\nid = 1", "{path} is not valid TOML"),
    ("[[business]]\nname = \"가게\"".encode("cp949"), "{path} is not UTF-8 text"),
])
def test_file_errors(tmp_path, content, message):
    path = tmp_path / "businesses.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        businesses_from_env({"POINT3_BUSINESSES": str(path)})
    assert message.format(path=path) in str(caught.value)


@pytest.mark.parametrize("env", [{}, {"POINT3_BUSINESSES": "  "}])
def test_unset_means_no_declarations(env):
    assert businesses_from_env(env) == []


def test_the_demo_file_declares_every_sandbox_business():
    businesses = businesses_from_env({"POINT3_BUSINESSES": str(DEMO_BUSINESSES)})
    declared = {n for b in businesses for n in b.client_nicknames}
    assert declared == {m for category in CATEGORIES for m in category.merchants}
    assert {b.sales for b in businesses} == {"all_taxable", "by_vat"}


def test_declarations_load_one_row_per_nickname_and_replace_the_previous_ones(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    books = Business("books", "책방", "2208162517", "면세사업자", "all_exempt", ("책방", "책방 2호점"), "ident")
    with warehouse.connect() as conn:
        assert load_declarations(conn, load_businesses(Path(DEMO_BUSINESSES))) == 6
        assert load_declarations(conn, [books]) == 2
        rows = conn.execute(
            "SELECT business_id, client_nickname, client_identification, registration_number "
            "FROM business_declarations ORDER BY client_nickname"
        ).fetchall()
    assert rows == [("books", "책방", "ident", "2208162517"), ("books", "책방 2호점", "ident", "2208162517")]
