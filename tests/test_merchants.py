"""The merchants file: good entries load with their own folders, each bad entry fails alone
with one sentence naming it, and without the file the POINT3_* variables are `default`."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from point3_pipeline.config import ConfigError, reconciliation_terms
from point3_pipeline.merchants import DEFAULT_ID, TERM_VARIABLES, load_merchant, load_merchants, load_merchants_file

TODAY = dt.date(2026, 3, 18)
KEY = "sk_live_merchant_key_0001"
ENV = {"POINT3_API_URL": "http://127.0.0.1:8030"}
BAD_BUSINESSES = """[[business]]
id = "arthall"
name = "아트홀 푸른별"
registration_number = "101-81-12342"
taxpayer_type = "일반과세자"
sales = "all_taxable"
client_nickname = "아트홀 푸른별"
"""


def _key(folder: Path, name: str, key: str = KEY, mode: int = 0o600) -> Path:
    path = folder / "keys" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(mode)
    return path


def _file(tmp_path: Path, body: str, root: str = "data") -> Path:
    path = tmp_path / "merchants.toml"
    path.write_text(f'root = "{root}"\n\n{body}', encoding="utf-8")
    return path


def _entry(id_: str = "arthall", **fields) -> str:
    values = {"id": f'"{id_}"', "name": '"아트홀 푸른별"', "key_file": f'"keys/{id_}.key"', "start_date": "2026-01-01",
              **fields}
    lines = [f"{k} = {v}" for k, v in values.items() if v is not None]
    return "[[merchant]]\n" + "\n".join(lines) + "\n\n"


def _load(tmp_path: Path, body: str, env=ENV, **kwargs):
    return load_merchants({**env, "POINT3_MERCHANTS": str(_file(tmp_path, body, **kwargs))}, today=TODAY)


def test_a_merchant_has_its_own_folders_under_the_root(tmp_path):
    _key(tmp_path, "arthall.key")
    _key(tmp_path, "violet.key")
    (tmp_path / "arthall-businesses.toml").write_text(BAD_BUSINESSES.replace("12342", "12341"), encoding="utf-8")
    loaded = _load(tmp_path, _entry(businesses='"arthall-businesses.toml"')
                   + _entry("violet", start_date='"2026-02-01"', api_url='"https://api.point3.io/v1/"'))
    assert loaded.errors == ()
    arthall, violet = loaded.merchants
    root = tmp_path / "data"
    assert arthall.id == "arthall" and arthall.name == "아트홀 푸른별"
    assert arthall.warehouse_path == root / "arthall" / "warehouse" / "point3.duckdb"
    assert arthall.published_path == root / "arthall" / "warehouse" / "point3.published.duckdb"
    assert arthall.published_path == arthall.warehouse().published_path
    assert arthall.reports_dir == root / "arthall" / "reports" and arthall.folder == root / "arthall"
    assert arthall.key_file == tmp_path / "keys" / "arthall.key"
    assert arthall.businesses_file == tmp_path / "arthall-businesses.toml"
    assert arthall.api_url == "http://127.0.0.1:8030" and arthall.start_date == dt.date(2026, 1, 1)
    assert violet.api_url == "https://api.point3.io/v1" and violet.start_date == dt.date(2026, 2, 1)
    assert violet.businesses_file is None
    assert loaded.get("violet") is violet


def test_the_key_is_read_when_asked_and_is_in_no_repr(tmp_path):
    _key(tmp_path, "arthall.key")
    [merchant] = _load(tmp_path, _entry()).merchants
    assert merchant.secret_key().reveal() == KEY
    for text in (repr(merchant), str(merchant), repr(merchant.secret_key()), repr(load_merchants)):
        assert KEY not in text


def test_the_environment_of_one_merchant_names_its_files_not_its_key(tmp_path):
    _key(tmp_path, "arthall.key")
    _key(tmp_path, "violet.key", key="sk_live_violet")
    (tmp_path / "b.toml").write_text("")
    arthall, violet = _load(tmp_path, _entry(businesses='"b.toml"') + _entry("violet")).merchants
    assert arthall.environment() == {
        "POINT3_MERCHANTS": "", "POINT3_API_URL": "http://127.0.0.1:8030", "POINT3_START_DATE": "2026-01-01",
        "POINT3_WAREHOUSE": str(tmp_path / "data" / "arthall" / "warehouse" / "point3.duckdb"),
        "POINT3_REPORTS_DIR": str(tmp_path / "data" / "arthall" / "reports"), "POINT3_BUSINESSES": str(tmp_path / "b.toml"),
        "POINT3_SECRET_KEY": "", "POINT3_SECRET_KEY_FILE": str(tmp_path / "keys" / "arthall.key"),
    }  # fmt: skip
    # Laid over a parent that carries another merchant's settings, it is this merchant alone.
    parent = {**_today_env(tmp_path), "POINT3_BUSINESSES": "other.toml", "POINT3_MERCHANTS": "m.toml"}
    child = {**parent, **violet.environment()}
    [alone] = load_merchants(child, today=TODAY).merchants
    assert alone.secret_key(child).reveal() == "sk_live_violet"
    assert (alone.id, alone.warehouse_path, alone.businesses_file) == ("default", violet.warehouse_path, None)


def test_a_merchants_own_terms_are_its_reconciliation_terms_over_the_environment(tmp_path):
    _key(tmp_path, "arthall.key")
    _key(tmp_path, "violet.key")
    terms = {"fee_percent": '"3.3"', "fee_vat": "true", "credit_delay_days": "1", "deposit_match_days": "4",
             "payout_deposit_days": "7", "unexplained_threshold_won": "500"}
    arthall, violet = _load(tmp_path, _entry(**terms) + _entry("violet", fee_percent='"2.75"')).merchants
    assert {k: v for k, v in arthall.environment().items() if k in TERM_VARIABLES.values()} == {
        "POINT3_FEE_PERCENT": "3.3", "POINT3_FEE_VAT": "yes", "POINT3_CREDIT_DELAY_DAYS": "1",
        "POINT3_DEPOSIT_MATCH_DAYS": "4", "POINT3_PAYOUT_DEPOSIT_DAYS": "7", "POINT3_UNEXPLAINED_THRESHOLD_WON": "500",
    }
    parent = {"POINT3_FEE_PERCENT": "1", "POINT3_FEE_VAT": "yes", "POINT3_CREDIT_DELAY_DAYS": "2"}
    own = reconciliation_terms({**parent, **arthall.environment()})
    assert (own.fee_ppm, own.fee_vat, own.credit_delay_days, own.match_days, own.deposit_overdue_days,
            own.unexplained_threshold) == (33_000, True, 1, 4, 7, 500)
    # A term the entry leaves out comes from the environment, as without the file.
    mixed = reconciliation_terms({**parent, **violet.environment()})
    assert (mixed.fee_ppm, mixed.fee_vat, mixed.credit_delay_days, mixed.match_days) == (27_500, True, 2, 3)
    [plain] = _load(tmp_path, _entry("violet")).merchants
    assert not set(plain.environment()) & set(TERM_VARIABLES.values())
    no_vat = _load(tmp_path, _entry(fee_vat="false")).merchants[0]
    assert reconciliation_terms({**parent, **no_vat.environment()}).fee_vat is False


def test_a_rotated_key_is_read_anew(tmp_path):
    path = _key(tmp_path, "arthall.key")
    [merchant] = _load(tmp_path, _entry()).merchants
    path.write_text("sk_live_rotated")
    assert merchant.secret_key().reveal() == "sk_live_rotated"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry("Art Hall"), "merchant 1: id must be a slug of 1 to 63 lowercase letters, digits and inner '-', not 'Art Hall'."),
        (_entry("-art"), "not '-art'"),
        (_entry("a" * 64), "id must be a slug"),
        (_entry("arthall", id=None), "merchant 1: id must be a slug"),
        (_entry(colour='"blue"'), "merchant 'arthall': unknown field 'colour' (expected id, name, key_file, start_date, businesses, api_url, fee_percent, "
                                    "fee_vat, credit_delay_days, deposit_match_days, payout_deposit_days, unexplained_threshold_won)."),
        (_entry(name=None), "merchant 'arthall': name must be a non-empty string."),
        (_entry(key_file='"keys/missing.key"'), "merchant 'arthall': key_file points to {tmp}/keys/missing.key, which cannot be read (No such file or directory)."),
        (_entry(key_file='"keys/empty.key"'), "merchant 'arthall': key_file points to {tmp}/keys/empty.key, which is empty."),
        (_entry(start_date="1999-12-31"), "merchant 'arthall': start_date 1999-12-31 is before 2000-01-01"),
        (_entry(start_date="2026-03-19"), "merchant 'arthall': start_date 2026-03-19 is in the future (today is 2026-03-18 KST)"),
        (_entry(start_date='"2026-13-01"'), "merchant 'arthall': start_date must be a date as YYYY-MM-DD, not '2026-13-01'."),
        (_entry(start_date="2026-01-01T10:00:00"), "start_date must be a date as YYYY-MM-DD"),
        (_entry(api_url='"ftp://x"'), "merchant 'arthall': api_url must be an http(s) URL such as http://127.0.0.1:8030, not 'ftp://x'."),
        (_entry(businesses="3"), "merchant 'arthall': businesses must be a non-empty string."),
        (_entry(businesses='"missing.toml"'), "merchant 'arthall': businesses points to {tmp}/missing.toml, which cannot be read (No such file or directory)."),
        (_entry(businesses='"bad-businesses.toml"'), "merchant 'arthall': {tmp}/bad-businesses.toml: business 1 (arthall): registration_number 101-81-12342 fails the 사업자등록번호 checksum; check for a typo."),
        (_entry(fee_percent="3.3"), "merchant 'arthall': fee_percent must be a percent as a string, such as \"3.3\", not 3.3."),
        (_entry(fee_percent='""'), "merchant 'arthall': fee_percent must be a percent as a string"),
        (_entry(fee_percent='"3.33333"'), "merchant 'arthall': fee_percent must be a percent from 0 to 99.9999 with at most 4 decimals, such as 3.3, not '3.33333'."),
        (_entry(fee_percent='"100"'), "merchant 'arthall': fee_percent must be a percent from 0 to 99.9999"),
        (_entry(fee_vat='"yes"'), "merchant 'arthall': fee_vat must be true or false, not 'yes'."),
        (_entry(credit_delay_days="-1"), "merchant 'arthall': credit_delay_days must be a whole number from 0, not -1."),
        (_entry(credit_delay_days='"1"'), "merchant 'arthall': credit_delay_days must be a whole number from 0, not '1'."),
        (_entry(credit_delay_days="61"), "merchant 'arthall': credit_delay_days must be a whole number of days from 0 to 60, not '61'."),
        (_entry(deposit_match_days="true"), "merchant 'arthall': deposit_match_days must be a whole number from 0, not True."),
        (_entry(deposit_match_days="1.5"), "merchant 'arthall': deposit_match_days must be a whole number from 0, not 1.5."),
        (_entry(payout_deposit_days="366"), "merchant 'arthall': payout_deposit_days must be a whole number of days from 0 to 365, not '366'."),
        (_entry(unexplained_threshold_won="10000000000000000000"), "merchant 'arthall': unexplained_threshold_won must be a whole number of won from 0"),
    ],
)
def test_a_bad_entry_fails_that_merchant_alone_with_one_sentence(tmp_path, entry, message):
    _key(tmp_path, "arthall.key")
    _key(tmp_path, "violet.key")
    (tmp_path / "keys" / "empty.key").write_text("  \n")
    (tmp_path / "bad-businesses.toml").write_text(BAD_BUSINESSES, encoding="utf-8")
    loaded = _load(tmp_path, entry + _entry("violet"))
    assert [m.id for m in loaded.merchants] == ["violet"]
    [error] = loaded.errors
    assert message.format(tmp=tmp_path) in error.message
    assert error.message.startswith(f"{tmp_path / 'merchants.toml'}, merchant ")
    assert error.message.count(". ") == 0 and "\n" not in error.message
    with pytest.raises(ConfigError) as raised:
        loaded.get(error.entry)
    assert str(raised.value) == error.message


def test_a_duplicate_id_fails_both_entries(tmp_path):
    _key(tmp_path, "arthall.key")
    _key(tmp_path, "violet.key")
    loaded = _load(tmp_path, _entry() + _entry("violet") + _entry(name='"다른 상점"'))
    assert [m.id for m in loaded.merchants] == ["violet"]
    [error] = loaded.errors
    assert error.entry == "arthall"
    assert error.message.endswith("merchant 'arthall': the id 'arthall' is used by 2 entries; give each merchant its own id.")


def test_a_missing_api_url_names_both_places(tmp_path):
    _key(tmp_path, "arthall.key")
    [error] = _load(tmp_path, _entry(), env={}).errors
    assert error.message.endswith("api_url is not given and POINT3_API_URL is not set: give either.")


def test_a_key_file_others_can_read_is_named_in_a_warning(tmp_path, caplog):
    path = _key(tmp_path, "arthall.key", mode=0o644)
    with caplog.at_level(logging.WARNING):
        [merchant] = _load(tmp_path, _entry()).merchants
    assert merchant.id == "arthall"
    assert any(str(path) in r.getMessage() and "chmod 600" in r.getMessage() for r in caplog.records)
    assert not any(KEY in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('root = "data"\ncolour = 1\n', "unknown top-level key 'colour'"),
        ("[[merchant]]\nid = 'a'\n", "root must name the folder"),
        ('root = "data"\nmerchant = 3\n', "'merchant' must be a list of [[merchant]] tables."),
        ("root = \n", "is not valid TOML"),
    ],
)
def test_a_mistake_in_the_file_itself_is_one_config_error(tmp_path, text, message):
    path = tmp_path / "merchants.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_merchants_file(path, ENV, today=TODAY)


def test_an_unreadable_merchants_file_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"^POINT3_MERCHANTS points to .*missing.toml, which cannot be read"):
        load_merchants({"POINT3_MERCHANTS": str(tmp_path / "missing.toml")})


def test_an_absolute_root_and_key_file_are_kept(tmp_path):
    key = _key(tmp_path, "arthall.key")
    loaded = _load(tmp_path / "keys", _entry(key_file=f'"{key}"'), root=str(tmp_path / "elsewhere"))
    [merchant] = loaded.merchants
    assert merchant.key_file == key and merchant.folder == tmp_path / "elsewhere" / "arthall"


# --- without the file -------------------------------------------------------------------------


def _today_env(tmp_path: Path, **extra) -> dict[str, str]:
    return {
        "POINT3_API_URL": "http://127.0.0.1:8030/", "POINT3_SECRET_KEY": KEY, "POINT3_START_DATE": "2026-02-01",
        "POINT3_WAREHOUSE": str(tmp_path / "warehouse" / "point3.duckdb"), "POINT3_REPORTS_DIR": str(tmp_path / "reports"),
        **extra,
    }  # fmt: skip


@pytest.mark.parametrize("merchants_var", [None, "", "  "])
def test_without_the_file_the_variables_are_the_default_merchant_with_todays_paths(tmp_path, merchants_var):
    env = _today_env(tmp_path, POINT3_BUSINESSES="docs/demo-businesses.toml")
    if merchants_var is not None:
        env["POINT3_MERCHANTS"] = merchants_var
    loaded = load_merchants(env, today=TODAY)
    assert loaded.errors == ()
    [merchant] = loaded.merchants
    assert merchant.id == DEFAULT_ID and merchant.folder is None and merchant.key_file is None
    assert merchant.warehouse_path == tmp_path / "warehouse" / "point3.duckdb"
    assert merchant.published_path == tmp_path / "warehouse" / "point3.published.duckdb"
    assert merchant.reports_dir == tmp_path / "reports" and merchant.api_url == "http://127.0.0.1:8030"
    assert merchant.businesses_file == Path("docs/demo-businesses.toml")
    assert merchant.secret_key(env).reveal() == KEY and KEY not in repr(merchant)


def test_the_default_merchant_reads_its_key_file(tmp_path):
    path = _key(tmp_path, "default.key")
    env = _today_env(tmp_path, POINT3_SECRET_KEY_FILE=str(path))
    del env["POINT3_SECRET_KEY"]
    [merchant] = load_merchants(env, today=TODAY).merchants
    assert merchant.key_file == path and merchant.secret_key(env).reveal() == KEY


@pytest.mark.parametrize("missing", ["POINT3_API_URL", "POINT3_START_DATE", "POINT3_WAREHOUSE", "POINT3_REPORTS_DIR", "POINT3_SECRET_KEY"])
def test_a_bad_variable_fails_the_default_merchant_naming_it(tmp_path, missing):
    env = _today_env(tmp_path)
    del env[missing]
    loaded = load_merchants(env, today=TODAY)
    assert loaded.merchants == ()
    [error] = loaded.errors
    assert error.entry == DEFAULT_ID and error.message.startswith("merchant 'default': " + missing)


def test_an_unknown_merchant_lists_the_known_ones(tmp_path):
    _key(tmp_path, "arthall.key")
    with pytest.raises(ConfigError, match=r"has no merchant 'violet' \(known: arthall\)\.$"):
        _load(tmp_path, _entry()).get("violet")


def test_one_merchant_loads_as_the_whole_file_gives_it_with_only_its_own_entry_checked(tmp_path):
    _key(tmp_path, "arthall.key")
    _key(tmp_path, "violet.key")
    body = _entry() + _entry("violet", start_date='"2026-02-01"') + _entry("broken", key_file='"keys/missing.key"')
    env = {**ENV, "POINT3_MERCHANTS": str(_file(tmp_path, body))}
    whole = load_merchants(env, today=TODAY)
    assert load_merchant("violet", env, today=TODAY) == whole.get("violet")
    [error] = whole.errors
    with pytest.raises(ConfigError) as raised:
        load_merchant("broken", env, today=TODAY)
    assert str(raised.value) == error.message
    with pytest.raises(ConfigError, match=r"has no merchant 'nobody' \(known: arthall, violet\)\.$"):
        load_merchant("nobody", env, today=TODAY)
    # arthall's key file gone: violet's steps do not read it
    (tmp_path / "keys" / "arthall.key").unlink()
    assert load_merchant("violet", env, today=TODAY) == whole.get("violet")
    assert [e.entry for e in load_merchants(env, today=TODAY).errors] == ["arthall", "broken"]
