"""Merchant key rotation, and the key file it writes.

Rotation is the one operation that can lock the merchant out: point3 destroys the old key
when it issues the new one, so everything about the key file that can be checked is checked
before that call, and the new key is on disk before anything else happens.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ConfigError, SecretKey, folder_write_problem

if TYPE_CHECKING:
    from .client import Point3Client


class KeyNotSavedError(Exception):
    """point3 issued a new key that could not be written; the old key is already dead."""


def write_key_file(path: str | os.PathLike[str], key: str) -> None:
    """Replace the key file atomically: readers see the old key or the new one, never half.

    Temp file in the same directory (so the rename stays on one file system), mode 0600,
    fsync, rename over the old file, fsync the directory so the rename survives a crash.
    """
    if not key or key.strip() != key or "\n" in key:
        raise ValueError("the key must be non-empty, on one line, without surrounding spaces")
    path = Path(path)
    directory = path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_replaceable(path: str | os.PathLike[str]) -> None:
    """ConfigError with one sentence unless `write_key_file(path, ...)` can work: the folder
    exists and takes a temp file renamed onto another, and the file, if present, is a regular
    file this user may replace."""
    path = Path(path)
    folder = path.parent
    where = f"POINT3_SECRET_KEY_FILE points to {path}"
    if not folder.is_dir():
        raise ConfigError(f"{where}, whose folder {folder} does not exist: create it or point the variable elsewhere; no key was rotated.")
    if os.path.lexists(path):
        mode = path.lstat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{where}, which is not a regular file (a link, folder or device): point the variable at the key file itself; no key was rotated.")
        if not _may_replace(path):
            raise ConfigError(f"{where}, which this user may not replace (its folder is sticky and the file is someone else's); no key was rotated.")
    problem = folder_write_problem(folder, create=False)
    if problem:
        raise ConfigError(
            f"{where}, but files cannot be written in its folder {folder} ({problem}): make the folder writable; no key was rotated."
        )


def _may_replace(path: Path) -> bool:
    # In a sticky folder (like /tmp) only the owner of the file or of the folder may rename onto it.
    folder = path.parent.stat()
    if not folder.st_mode & stat.S_ISVTX or os.geteuid() == 0:
        return True
    return os.geteuid() in (folder.st_uid, path.lstat().st_uid)


def rotate_key(client: Point3Client, key_path: str | os.PathLike[str]) -> SecretKey:
    """Rotate the merchant key and save the new one to `key_path` before returning.

    First `check_replaceable(key_path)`: a refusal (ConfigError) makes no call, so the old key
    still works. If `refresh_merchant_key` itself fails its error propagates (see its
    docstring: the old key may be dead and the new one lost). If saving still fails,
    KeyNotSavedError says so, without the key.
    """
    check_replaceable(key_path)
    new_key = client.refresh_merchant_key()
    try:
        write_key_file(key_path, new_key.reveal())
    except Exception as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise KeyNotSavedError(
            f"point3 issued a new merchant key but it could not be saved to {os.fspath(key_path)} ({detail}). "
            "The old key is already invalid: get the current key from point3's merchant console "
            "and put it in that file."
        ) from exc
    return new_key
