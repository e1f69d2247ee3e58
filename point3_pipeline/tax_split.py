"""The tax split: every payment's class and filing amounts, and a person's classifications.

`Warehouse.refresh_derived` rebuilds `payment_tax_split` and `tax_filing_daily` (sql/derived/)
with every refresh, in its transaction right after `cancellations`, with the declarations of
POINT3_BUSINESSES. `refresh_tax_split` does the same inside a caller's own transaction.
`classify`, `unclassify` and `classify_from_csv` append to `payment_classifications`, which is
keyed by signature and never rebuilt: a person's word survives re-syncs and record changes.
The split reflects them at the next refresh.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import duckdb

from point3_pipeline.businesses import Business, load_declarations
from point3_pipeline.warehouse import derived_sql

TAX_SPLIT_TABLES = ("payment_tax_split", "tax_filing_daily")
PERSON_CLASSES = ("taxable", "exempt", "mixed")
CSV_COLUMNS = ("signature", "tax_class", "note")
MAX_REPORTED_PROBLEMS = 20

_INSERT = (
    "INSERT INTO payment_classifications (signature, action, tax_class, note, classified_by, classified_at) "
    "SELECT unnest($signatures), $action, unnest($classes), unnest($notes), $who, now() "
    "RETURNING classification_id"
)


class ClassificationError(ValueError):
    """A classification cannot be recorded; the message says which and why, one sentence each."""


def refresh_tax_split(conn: duckdb.DuckDBPyConnection, businesses: Sequence[Business]) -> dict[str, int]:
    """Replace the declarations and rebuild the split tables; returns their row counts.

    Runs no BEGIN/COMMIT of its own: call it inside the transaction that rebuilt
    `cancellations`, so the split never pairs with another version of it."""
    load_declarations(conn, businesses)
    for table in TAX_SPLIT_TABLES:
        conn.execute(derived_sql(table))
    return {table: conn.execute("SELECT count(*) FROM query_table(?)", [table]).fetchone()[0] for table in TAX_SPLIT_TABLES}


def classify(conn: duckdb.DuckDBPyConnection, signature: str, tax_class: str, note: str, who: str) -> int:
    """Record a person's class for one payment; returns the classification's id."""
    _check_who(who)
    problem = _problems(conn, [(signature, tax_class, note)], [f"payment {signature!r}"])
    if problem:
        raise ClassificationError(problem[0])
    return _insert(conn, "classify", [(signature, tax_class, note.strip())], who)[0]


def unclassify(conn: duckdb.DuckDBPyConnection, signature: str, who: str, note: str = "") -> int:
    """Undo a person's class: the payment returns to its declaration or the rule. The earlier
    classification stays in `payment_classifications` as history."""
    _check_who(who)
    current = conn.execute(
        "SELECT action FROM payment_classifications WHERE signature = ? ORDER BY classification_id DESC LIMIT 1",
        [signature],
    ).fetchone()
    if current is None or current[0] != "classify":
        raise ClassificationError(f"payment {signature!r} has no classification by a person to undo.")
    return _insert(conn, "unclassify", [(signature, None, note.strip())], who)[0]


def classify_from_csv(conn: duckdb.DuckDBPyConnection, path: str | Path, who: str) -> int:
    """Classify every line of a UTF-8 CSV with columns signature,tax_class,note; all or nothing.

    Every bad line is reported (one sentence each, up to MAX_REPORTED_PROBLEMS) and then
    nothing is recorded. Returns the number of classifications recorded."""
    _check_who(who)
    path = Path(path)
    rows, where = _read_csv(path)
    problems = _problems(conn, rows, where)
    seen: dict[str, str] = {}
    for (signature, _, _), place in zip(rows, where):
        if signature in seen:
            problems.append(f"{place}: payment {signature!r} is also classified on {seen[signature]}; keep one line.")
        seen.setdefault(signature, place)
    if problems:
        raise ClassificationError(_summary(path, problems))
    return len(_insert(conn, "classify", [(s, c, n.strip()) for s, c, n in rows], who))


def _check_who(who: str) -> None:
    if not isinstance(who, str) or not who.strip():
        raise ClassificationError("say who classifies: the person's name must not be empty.")


def _read_csv(path: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ClassificationError(f"{path} cannot be read ({exc.strerror}).") from None
    except UnicodeDecodeError:
        raise ClassificationError(f"{path} is not UTF-8 text: save the CSV as UTF-8.") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
        raise ClassificationError(f"{path}: the first line must be the header {','.join(CSV_COLUMNS)}.")
    rows, where = [], []
    for line_number, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue  # blank lines, as spreadsheets leave them at the end
        place = f"{path} line {line_number}"
        if len(fields) != len(CSV_COLUMNS):
            raise ClassificationError(f"{place} has {len(fields)} fields, not 3 (quote a note that contains a comma).")
        rows.append((fields[0].strip(), fields[1].strip(), fields[2]))
        where.append(place)
    if not rows:
        raise ClassificationError(f"{path} has a header but no classifications.")
    return rows, where


def _problems(conn: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str]], where: list[str]) -> list[str]:
    """One sentence per row that cannot be recorded: unknown class or payment, no note, or a
    class the payment's figures cannot carry (tax_class_fits, the split's own rule)."""
    known = dict(_fits(conn, rows))
    problems = []
    for (signature, tax_class, note), place in zip(rows, where):
        if tax_class not in PERSON_CLASSES:
            problems.append(f"{place}: tax class must be one of {', '.join(PERSON_CLASSES)}, not {tax_class!r}.")
        elif signature not in known:
            problems.append(f"{place}: no payment with signature {signature!r} in the warehouse.")
        elif not known[signature][tax_class]:
            problems.append(f"{place}: its VAT is too large for {tax_class} (over its total, or over 1/11 for mixed).")
        elif not note.strip():
            problems.append(f"{place}: give a note saying why it is {tax_class}.")
    return problems


def _fits(conn: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str]]) -> list[tuple[str, dict[str, bool]]]:
    found = conn.execute(
        "SELECT signature, tax_class_fits('taxable', total_charge, vat), tax_class_fits('exempt', total_charge, vat), "
        "tax_class_fits('mixed', total_charge, vat) FROM payments WHERE signature IN (SELECT unnest(?))",
        [[signature for signature, _, _ in rows]],
    ).fetchall()
    return [(s, {"taxable": t, "exempt": e, "mixed": m}) for s, t, e, m in found]


def _summary(path: Path, problems: list[str]) -> str:
    shown = problems[:MAX_REPORTED_PROBLEMS]
    more = len(problems) - len(shown)
    tail = f" ({more} more bad lines not shown.)" if more else ""
    return f"{path}: nothing was recorded. " + " ".join(shown) + tail


def _insert(conn: duckdb.DuckDBPyConnection, action: str, rows: list[tuple], who: str) -> list[int]:
    # One statement, so a bulk classification is recorded whole or not at all.
    found = conn.execute(_INSERT, {
        "signatures": [r[0] for r in rows], "action": action, "classes": [r[1] for r in rows],
        "notes": [r[2] for r in rows], "who": who.strip(),
    }).fetchall()
    return [row[0] for row in found]
