"""Which file a download URL may reach: a workbook or CSV inside the merchant's own reports
folder, nothing else. The request's path is checked part by part before it touches the file
system, then resolved (symlinks followed) and required to stay inside the resolved folder and
to be a regular file; anything else is None, which the app answers 404 like a missing file.
"""

from __future__ import annotations

import re
import stat
import unicodedata
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import quote

MEDIA_TYPES = {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".csv": "text/csv",
}
MAX_PATH_CHARS = 512
# A part of the request path: no separators, NUL or other control characters, no Windows drive
# or stream colon, not hidden (temp files are .<name>.tmp-PID), not '.' or '..'.
_PART = re.compile(r"^[^./\\:\x00-\x1f\x7f][^/\\:\x00-\x1f\x7f]*$")
# In the raw (still percent-encoded) path: an encoded separator, dot, NUL or percent sign means
# someone is trying to slip something past the decoding; no link of the portal has one.
_ENCODED = re.compile(rb"%(?:2f|5c|00|2e|25)", re.IGNORECASE)


def raw_path_problem(raw_path: bytes) -> bool:
    return bool(_ENCODED.search(raw_path))


def resolve_download(reports_dir: Path, requested: str, refused: Iterable[Path] = ()) -> Path | None:
    """The file `requested` (relative, '/'-separated) names inside `reports_dir`, or None.
    `refused`: files never served even if found there (key files, the portal's store)."""
    if not requested or len(requested) > MAX_PATH_CHARS:
        return None
    parts = requested.split("/")
    if not all(_PART.match(part) for part in parts):
        return None
    if Path(parts[-1]).suffix.lower() not in MEDIA_TYPES:
        return None
    try:
        root = reports_dir.resolve(strict=True)
        target = root.joinpath(*parts).resolve(strict=True)
        mode = target.stat().st_mode
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        return None
    if not target.is_relative_to(root) or target == root or not stat.S_ISREG(mode):
        return None
    if target.suffix.lower() not in MEDIA_TYPES:  # a symlink named .xlsx pointing at something else
        return None
    if any(_same(target, other) for other in refused):
        return None
    return target


def _same(target: Path, other: Path) -> bool:
    """The same file, by device and inode: a hard link to a key file is that key under another name."""
    try:
        return target.samefile(other)
    except (OSError, RuntimeError):
        return False


def content_disposition(download_name: str) -> str:
    """`attachment` with the name in UTF-8 (RFC 5987/6266) and an ASCII stand-in for old clients."""
    clean = "".join(c for c in download_name if unicodedata.category(c)[0] != "C" and c not in '/\\"')
    clean = clean.strip().lstrip(".") or "download"
    name = PurePosixPath(clean)
    suffix = name.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", name.suffix) else ""
    stem = re.sub(r"[^A-Za-z0-9.-]+", "_", name.stem if suffix else clean).strip("._") or "download"
    ascii_name = stem + suffix
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(clean, safe='')}"
