"""Key rotation against the sandbox: every check that can be made is made before point3
destroys the old key, and a refusal leaves the old key working."""

from __future__ import annotations

import os
import stat

import pytest

from point3_pipeline import keys
from point3_pipeline.client import Point3Client
from point3_pipeline.config import ConfigError, SecretKey
from point3_pipeline.errors import AuthenticationError
from tests.conftest import FAST_RETRY
from tests.test_config import read_only


@pytest.fixture
def key_file(sandbox, tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    path = folder / "point3.key"
    path.write_text(sandbox.key + "\n")
    os.chmod(path, 0o600)
    return path


def _client(sandbox, key: str) -> Point3Client:
    return Point3Client(sandbox.url, key, retry=FAST_RETRY)


def _assert_key_still_works(sandbox, key: str) -> None:
    assert sandbox.key == key
    with _client(sandbox, key) as client:
        assert isinstance(client.settlement_balance(), int)


def test_rotation_writes_the_new_key_and_only_it_works(sandbox, key_file):
    old = sandbox.key
    with _client(sandbox, old) as client:
        new = keys.rotate_key(client, key_file)
    assert new == SecretKey(sandbox.key) and new != SecretKey(old)
    assert key_file.read_text() == sandbox.key + "\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(os.listdir(key_file.parent)) == ["point3.key"]
    _assert_key_still_works(sandbox, new.reveal())
    with _client(sandbox, old) as client, pytest.raises(AuthenticationError):
        client.settlement_balance()


def test_rotation_may_create_the_key_file_in_a_writable_folder(sandbox, tmp_path):
    path = tmp_path / "new.key"
    with _client(sandbox, sandbox.key) as client:
        new = keys.rotate_key(client, path)
    assert path.read_text() == new.reveal() + "\n"


def _make_folder_read_only(path, monkeypatch):
    read_only(path.parent, monkeypatch)


def _make_missing_folder(path, monkeypatch):
    return path.parent / "missing" / path.name


def _make_directory(path, monkeypatch):
    path.unlink()
    path.mkdir()


def _make_symlink(path, monkeypatch):
    real = path.with_name("real.key")
    path.rename(real)
    path.symlink_to(real)


def _make_rename_fail(path, monkeypatch):
    real_replace = os.replace

    def replace(src, dst):
        if os.path.dirname(os.fspath(dst)) == os.fspath(path.parent):
            raise PermissionError(1, "Operation not permitted", os.fspath(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def _make_someone_elses_file_in_a_sticky_folder(path, monkeypatch):
    os.chmod(path.parent, 0o1777)
    monkeypatch.setattr(os, "geteuid", lambda: path.stat().st_uid + 4242)


@pytest.mark.parametrize(("damage", "what"), [
    (_make_someone_elses_file_in_a_sticky_folder, "may not replace"),
    (_make_folder_read_only, "cannot be written"),
    (_make_missing_folder, "does not exist"),
    (_make_directory, "not a regular file"),
    (_make_symlink, "not a regular file"),
    (_make_rename_fail, "Operation not permitted"),
])
def test_a_key_file_that_cannot_be_replaced_is_refused_before_the_refresh(sandbox, key_file, monkeypatch, damage, what):
    old = sandbox.key
    path = damage(key_file, monkeypatch) or key_file
    with _client(sandbox, old) as client:
        with pytest.raises(ConfigError) as info:
            keys.rotate_key(client, path)
        assert client.stats.requests == 0
    message = str(info.value)
    assert what in message and str(path) in message and "no key was rotated" in message and old not in message
    monkeypatch.undo()
    _assert_key_still_works(sandbox, old)


def test_a_write_that_fails_after_the_checks_says_the_old_key_is_gone(sandbox, key_file, monkeypatch):
    # What no check can foresee (the disk filling between check and write): the old key is dead.
    real_fsync = os.fsync
    calls = []

    def fsync(fd):
        calls.append(fd)
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    old = sandbox.key
    with _client(sandbox, old) as client:
        monkeypatch.setattr(os, "fsync", fsync)
        with pytest.raises(keys.KeyNotSavedError) as info:
            keys.rotate_key(client, key_file)
        assert client.stats.requests == 1
    monkeypatch.undo()
    message = str(info.value)
    assert "No space left" in message and str(key_file) in message and "merchant console" in message
    assert sandbox.key not in message and old not in message
    assert key_file.read_text() == old + "\n" and sorted(os.listdir(key_file.parent)) == ["point3.key"]
    assert sandbox.key != old
