"""Settings from the environment: each mistake a user can make is one sentence naming the variable."""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import logging
import os
from pathlib import Path

import pytest

from point3_pipeline import config
from point3_pipeline.config import ConfigError, SecretKey
from point3_pipeline.limits import DEFAULT_LIMITS, Limits

KEY = "sk_test_0123456789abcdef"
TODAY = dt.date(2026, 3, 18)


def read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make `folder` (created if missing) read-only. Root ignores permission bits, so for root
    nothing may be created in it either, the way a read-only mount refuses."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o555)
    if os.geteuid() != 0:
        return folder
    real_open, real_mkdir = os.open, os.mkdir

    def refuse_inside(path) -> None:
        if Path(os.path.abspath(path)).parent == folder.absolute():
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    def open_(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            refuse_inside(path)
        return real_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        refuse_inside(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)
    return folder


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:8030/", "http://127.0.0.1:8030"),
    ("http://127.0.0.1:65535", "http://127.0.0.1:65535"),
    ("https://api.point3.io/v1", "https://api.point3.io/v1"),
    ("http://[::1]:8030", "http://[::1]:8030"),
])
def test_api_url_accepts_usable_urls(url, expected):
    assert config.api_url({"POINT3_API_URL": url}) == expected


@pytest.mark.parametrize(("url", "what"), [
    ("http://127.0.0.1:99999", "port '99999'"),
    ("http://127.0.0.1:abc", "port 'abc'"),
    ("http://127.0.0.1:0", "port '0'"),
    ("http://127.0.0.1:-1", "port '-1'"),
    ("http://:8030", "http(s) URL"),
    ("http://exa mple.com", "space"),
])
def test_api_url_refuses_unusable_urls_in_one_sentence(url, what):
    with pytest.raises(ConfigError) as info:
        config.api_url({"POINT3_API_URL": url})
    message = str(info.value)
    assert "POINT3_API_URL" in message and what in message and "\n" not in message


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"POINT3_PORTAL_URL": "  "}, None),
    ({"POINT3_PORTAL_URL": "https://reports.example.kr/"}, "https://reports.example.kr"),
    ({"POINT3_PORTAL_URL": "https://example.kr/point3"}, "https://example.kr/point3"),
])
def test_portal_url_is_optional(env, expected):
    assert config.portal_url(env) == expected


def test_portal_url_refuses_what_is_no_url_in_one_sentence():
    with pytest.raises(ConfigError, match=r"^POINT3_PORTAL_URL must be an http\(s\) URL .*'reports.example.kr'\.$"):
        config.portal_url({"POINT3_PORTAL_URL": "reports.example.kr"})


@pytest.mark.parametrize(("key", "what"), [
    ("sk_test 0123", "contains a space"),
    ("sk_test\t0123", "contains a space"),
    ("\ufeffsk_test_0123", "byte-order mark"),
    ("sk_test_0123\nsk_other", "more than one line"),
    ("sk_test_0123\r\nsk_other", "more than one line"),
    ("sk_test_\udcff0123", "not UTF-8"),  # os.environ's spelling of the byte 0xff
    ("sk_test_é", "printable ASCII"),
])
def test_unusable_keys_in_the_environment_are_refused_without_repeating_them(key, what):
    with pytest.raises(ConfigError) as info:
        config.secret_key({"POINT3_SECRET_KEY": key})
    message = str(info.value)
    assert "POINT3_SECRET_KEY" in message and what in message
    assert "sk_test" not in message and "\n" not in message


@pytest.mark.parametrize(("data", "what"), [
    (b"sk_test 0123\n", "contains a space"),
    (b"\xef\xbb\xbfsk_test_0123\n", "byte-order mark"),
    (b"sk_test_0123\nsk_other\n", "more than one line"),
    (b"sk_test_\xff0123\n", "not UTF-8"),
    (b"\xff\xfes\x00k\x00", "not UTF-8"),  # saved as UTF-16
])
def test_unusable_key_files_are_refused_naming_the_file_not_the_key(tmp_path, data, what):
    path = tmp_path / "point3.key"
    path.write_bytes(data)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as info:
        config.secret_key({"POINT3_SECRET_KEY_FILE": str(path)})
    message = str(info.value)
    assert "POINT3_SECRET_KEY_FILE" in message and str(path) in message and what in message
    assert "sk_test" not in message and "\n" not in message


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_key_file_open_to_group_or_others_gets_a_warning_naming_the_file(tmp_path, caplog, mode):
    path = tmp_path / "point3.key"
    path.write_text(KEY + "\n")
    os.chmod(path, mode)
    with caplog.at_level(logging.WARNING, logger="point3_pipeline.config"):
        assert config.secret_key({"POINT3_SECRET_KEY_FILE": str(path)}) == SecretKey(KEY)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and "chmod 600" in warnings[0]
    assert KEY not in caplog.text


def test_a_private_key_file_gets_no_warning(tmp_path, caplog):
    path = tmp_path / "point3.key"
    path.write_text(KEY + "\n")
    os.chmod(path, 0o600)
    with caplog.at_level(logging.WARNING, logger="point3_pipeline.config"):
        config.secret_key({"POINT3_SECRET_KEY_FILE": str(path)})
    assert caplog.records == []


def test_key_file_refuses_when_the_environment_key_is_the_one_in_use():
    with pytest.raises(ConfigError) as info:
        config.key_file({"POINT3_SECRET_KEY": KEY, "POINT3_SECRET_KEY_FILE": "/keys/point3.key"})
    message = str(info.value)
    assert "unset POINT3_SECRET_KEY" in message and KEY not in message and "\n" not in message


@pytest.mark.parametrize(("value", "expected"), [
    ("2000-01-01", dt.date(2000, 1, 1)),
    ("2024-02-29", dt.date(2024, 2, 29)),
    ("2026-03-18", TODAY),
])
def test_start_date_within_bounds(value, expected):
    assert config.start_date({"POINT3_START_DATE": value}, today=TODAY) == expected


@pytest.mark.parametrize(("value", "what"), [
    ("2026-03-19", "in the future"),
    ("2099-01-01", "in the future"),
    ("1999-12-31", "before 2000-01-01"),
    ("1899-01-01", "before 2000-01-01"),
    ("0001-01-01", "before 2000-01-01"),
])
def test_start_date_out_of_bounds_is_refused(value, what):
    with pytest.raises(ConfigError) as info:
        config.start_date({"POINT3_START_DATE": value}, today=TODAY)
    assert "POINT3_START_DATE" in str(info.value) and what in str(info.value)


def test_start_date_is_checked_against_today_in_korea():
    tomorrow = config.kst_today() + dt.timedelta(days=1)
    with pytest.raises(ConfigError, match="in the future"):
        config.start_date({"POINT3_START_DATE": tomorrow.isoformat()})
    assert config.start_date({"POINT3_START_DATE": config.kst_today().isoformat()}) == config.kst_today()


def test_limits_default_when_unset():
    assert config.limits({}) == DEFAULT_LIMITS
    assert config.limits({name: "  " for name in config.LIMIT_VARS}) == DEFAULT_LIMITS


@pytest.mark.parametrize(("variable", "value", "field", "expected"), [
    ("POINT3_MAX_AMOUNT_WON", "50000000", "max_amount_won", 50_000_000),
    ("POINT3_MAX_AMOUNT_WON", str(2**63 - 1), "max_amount_won", 2**63 - 1),
    ("POINT3_REQUEST_DEADLINE_SECONDS", "2.5", "request_deadline_seconds", 2.5),
    ("POINT3_REQUEST_DEADLINE_SECONDS", "90", "request_deadline_seconds", 90.0),
    ("POINT3_MAX_BODY_BYTES", " 1048576 ", "max_body_bytes", 1_048_576),
    ("POINT3_MAX_PAGES_PER_WINDOW", "40", "max_pages_per_window", 40),
    ("POINT3_MAX_RECORDS_PER_WINDOW", "1200", "max_records_per_window", 1200),
    ("POINT3_WINDOWS_READ_AT_ONCE", "1", "windows_read_at_once", 1),
    ("POINT3_WINDOWS_READ_AT_ONCE", "8", "windows_read_at_once", 8),
])
def test_limits_read_each_variable(variable, value, field, expected):
    limits = config.limits({variable: value})
    assert limits == dataclasses.replace(DEFAULT_LIMITS, **{field: expected})
    assert type(getattr(limits, field)) is type(getattr(DEFAULT_LIMITS, field))


@pytest.mark.parametrize("value", ["0", "9", "2.5", "-1", "two"])
def test_windows_read_at_once_is_a_small_whole_number(value):
    with pytest.raises(ConfigError) as raised:
        config.limits({"POINT3_WINDOWS_READ_AT_ONCE": value})
    assert str(raised.value) == (f"POINT3_WINDOWS_READ_AT_ONCE must be a whole number from 1 to 8, not {value!r} "
                                 "(unset it for the default).")


def test_every_limit_variable_names_a_limits_field_and_is_a_known_setting():
    assert set(config.LIMIT_VARS.values()) <= {f.name for f in dataclasses.fields(Limits)}
    assert set(config.LIMIT_VARS) <= set(config.ENV_VARS)
    assert all(variable in config.__doc__ for variable in config.ENV_VARS)


@pytest.mark.parametrize(("variable", "value"), [
    ("POINT3_MAX_AMOUNT_WON", "0"),
    ("POINT3_MAX_AMOUNT_WON", "-5"),
    ("POINT3_MAX_AMOUNT_WON", "1e10"),
    ("POINT3_MAX_AMOUNT_WON", "10,000"),
    ("POINT3_MAX_AMOUNT_WON", str(2**63)),  # beyond the warehouse's BIGINT
    ("POINT3_MAX_RECORDS_PER_WINDOW", "9" * 400),
    ("POINT3_MAX_BODY_BYTES", "32MB"),
    ("POINT3_MAX_PAGES_PER_WINDOW", "2.5"),
    ("POINT3_MAX_RECORDS_PER_WINDOW", "lots"),
    ("POINT3_REQUEST_DEADLINE_SECONDS", "0"),
    ("POINT3_REQUEST_DEADLINE_SECONDS", "-1"),
    ("POINT3_REQUEST_DEADLINE_SECONDS", "inf"),
    ("POINT3_REQUEST_DEADLINE_SECONDS", "nan"),
    ("POINT3_REQUEST_DEADLINE_SECONDS", "60s"),
])
def test_malformed_limits_name_the_variable(variable, value):
    with pytest.raises(ConfigError) as info:
        config.limits({variable: value})
    message = str(info.value)
    assert variable in message and repr(value) in message and "\n" not in message


def test_check_writable_folder_leaves_nothing_behind(tmp_path):
    (tmp_path / "kept").write_text("x")
    config.check_writable_folder(tmp_path, "POINT3_REPORTS_DIR", create=False)
    assert os.listdir(tmp_path) == ["kept"]


def test_check_writable_folder_creates_a_missing_folder_when_asked(tmp_path):
    folder = tmp_path / "a" / "b"
    config.check_writable_folder(folder, "POINT3_REPORTS_DIR", create=True)
    assert folder.is_dir() and os.listdir(folder) == []


@pytest.mark.parametrize("create", [False, True])
def test_check_writable_folder_refuses_a_read_only_folder(tmp_path, monkeypatch, create):
    folder = read_only(tmp_path / "ro", monkeypatch)
    with pytest.raises(ConfigError) as info:
        config.check_writable_folder(folder, "POINT3_WAREHOUSE", create=create)
    assert "POINT3_WAREHOUSE" in str(info.value) and str(folder) in str(info.value)
    assert os.listdir(folder) == []


def test_check_writable_folder_refuses_a_folder_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="POINT3_REPORTS_DIR"):
        config.check_writable_folder(tmp_path / "file" / "reports", "POINT3_REPORTS_DIR", create=True)


def test_writable_warehouse_path_refuses_a_read_only_folder_with_an_existing_warehouse(tmp_path, monkeypatch):
    folder = tmp_path / "warehouse"
    folder.mkdir()
    (folder / "point3.duckdb").write_bytes(b"")
    read_only(folder, monkeypatch)
    with pytest.raises(ConfigError, match="POINT3_WAREHOUSE"):
        config.writable_warehouse_path({"POINT3_WAREHOUSE": str(folder / "point3.duckdb")})
    assert config.warehouse_path({"POINT3_WAREHOUSE": str(folder / "point3.duckdb")}) == folder / "point3.duckdb"
