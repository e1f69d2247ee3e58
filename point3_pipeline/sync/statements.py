"""The sync's SQL statements, one file each in point3_pipeline/sql/sync/, every value bound."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def sql(name: str) -> str:
    return resources.files("point3_pipeline.sql").joinpath("sync", f"{name}.sql").read_text(encoding="utf-8")
