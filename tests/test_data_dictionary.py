"""docs/data-dictionary.md must describe the warehouse exactly as a fresh one is built.

Each table or view has a section headed ``### `name` ``, and each of its columns a row
``| `column` | TYPE | no/yes | meaning |`` in that section. schema_migrations is documented
like every other table, so nothing in the catalog is exempt. For tables whose DDL declares
nullability (the migrated tables, not the derived ones or the views, which the catalog
reports as all-nullable), the Null cell must agree with NOT NULL. The SQL examples must run.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from point3_pipeline.warehouse import DERIVED_TABLES, Warehouse

DICTIONARY = Path(__file__).resolve().parent.parent / "docs" / "data-dictionary.md"

_SECTION = re.compile(r"^### `([a-z0-9_]+)`\s*$", re.MULTILINE)
_HEADING = re.compile(r"^#{1,3} ", re.MULTILINE)
_COLUMN_ROW = re.compile(r"^\|\s*`([a-z0-9_]+)`\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|", re.MULTILINE)
_SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)
_TYPE_ALIASES = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def _sections(text: str) -> dict[str, str]:
    """Object name -> the text of its section (up to the next heading of level 1 to 3)."""
    sections = {}
    for match in _SECTION.finditer(text):
        name = match.group(1)
        assert name not in sections, f"`{name}` has two sections in the data dictionary"
        following = _HEADING.search(text, match.end())
        sections[name] = text[match.end() : following.start() if following else len(text)]
    return sections


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> dict[str, dict]:
    """{object: {"type": 'BASE TABLE' | 'VIEW', "columns": {name: (data_type, is_nullable)}}}."""
    warehouse = Warehouse(tmp_path_factory.mktemp("dictionary") / "w.duckdb")
    with warehouse.connect() as conn:
        rows = conn.execute(
            """
            SELECT c.table_name, t.table_type, c.column_name, c.data_type, c.is_nullable
            FROM information_schema.columns AS c
            JOIN information_schema.tables AS t USING (table_catalog, table_schema, table_name)
            WHERE c.table_schema = 'main'
            ORDER BY c.table_name, c.ordinal_position
            """
        ).fetchall()
    objects: dict[str, dict] = {}
    for table, table_type, column, data_type, nullable in rows:
        entry = objects.setdefault(table, {"type": table_type, "columns": {}})
        entry["columns"][column] = (data_type, nullable == "YES")
    return objects


@pytest.fixture(scope="module")
def sections() -> dict[str, str]:
    return _sections(DICTIONARY.read_text(encoding="utf-8"))


def _documented_columns(section: str) -> dict[str, tuple[str, str]]:
    return {name: (type_, null) for name, type_, null in _COLUMN_ROW.findall(section)}


def test_catalog_is_not_empty(catalog):
    # Guards the other tests against passing vacuously on a broken fixture.
    assert {"payments", "cancellations", "sync_coverage", "schema_migrations"} <= set(catalog)
    assert set(DERIVED_TABLES) <= set(catalog)


def test_every_table_and_view_has_a_section(catalog, sections):
    missing = sorted(set(catalog) - set(sections))
    assert not missing, f"tables/views not documented in {DICTIONARY.name}: {missing}"


def test_no_section_for_an_object_that_does_not_exist(catalog, sections):
    stale = sorted(set(sections) - set(catalog))
    assert not stale, f"{DICTIONARY.name} documents tables/views the schema does not have: {stale}"


def test_every_column_is_documented_in_its_tables_section(catalog, sections):
    problems = []
    for table, entry in catalog.items():
        documented = _documented_columns(sections.get(table, ""))
        for column in entry["columns"]:
            if column not in documented:
                problems.append(f"{table}.{column} has no row")
            elif f"`{column}`" not in sections[table]:  # pragma: no cover - implied by the row
                problems.append(f"{table}.{column} is not mentioned")
        for column in documented:
            if column not in entry["columns"]:
                problems.append(f"{table}.{column} is documented but does not exist")
    assert not problems, "data dictionary out of date:\n" + "\n".join(problems)


def test_documented_types_match_the_catalog(catalog, sections):
    problems = []
    for table, entry in catalog.items():
        documented = _documented_columns(sections.get(table, ""))
        for column, (data_type, _) in entry["columns"].items():
            if column not in documented:
                continue  # reported by the test above
            written = documented[column][0].upper()
            if _TYPE_ALIASES.get(written, written) != data_type:
                problems.append(f"{table}.{column}: documented {written}, catalog says {data_type}")
    assert not problems, "\n".join(problems)


def test_documented_nullability(catalog, sections):
    problems = []
    for table, entry in catalog.items():
        documented = _documented_columns(sections.get(table, ""))
        declared = entry["type"] == "BASE TABLE" and table not in DERIVED_TABLES
        for column, (_, nullable) in entry["columns"].items():
            if column not in documented:
                continue
            cell = documented[column][1].lower()
            if cell not in ("yes", "no"):
                problems.append(f"{table}.{column}: Null cell must be 'yes' or 'no', not {cell!r}")
            elif declared and (cell == "yes") != nullable:
                problems.append(
                    f"{table}.{column}: documented Null={cell}, DDL says {'nullable' if nullable else 'NOT NULL'}"
                )
    assert not problems, "\n".join(problems)


def test_sql_examples_run_on_a_fresh_warehouse(tmp_path):
    blocks = _SQL_BLOCK.findall(DICTIONARY.read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect():
        pass  # migrate and build the derived tables
    conn = duckdb.connect(str(warehouse.path), read_only=True)  # as an analyst would
    try:
        for block in blocks:
            try:
                conn.execute(block)
            except duckdb.Error as exc:
                pytest.fail(f"example query fails: {exc}\n{block}")
    finally:
        conn.close()
