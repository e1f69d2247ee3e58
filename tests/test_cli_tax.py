"""The tax commands of `point3`: classify (one, undo, a CSV), classifications, export filing and
report --period, against a warehouse synced from the sandbox; every mistake one line naming
what to fix."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import re
from pathlib import Path

import duckdb
import pytest

from point3_pipeline.businesses import businesses_from_env
from point3_pipeline.status import format_status
from point3_pipeline.warehouse import Warehouse
from tests.tax_fixtures import insert_payment
from tests.test_cli import assert_one_line, env, run, sandbox  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent
DEMO_BUSINESSES = ROOT / "docs" / "demo-businesses.toml"
MARCH = "2026-03"  # the test_cli sandbox's days: 2026-03-16 .. 2026-03-18


@pytest.fixture
def synced(env, capsys, monkeypatch):  # noqa: F811
    """The sandbox's days synced by `point3 sync`, with the demo's businesses declared."""
    monkeypatch.setenv("POINT3_BUSINESSES", str(DEMO_BUSINESSES))
    code, _, err = run(capsys, "sync", "--since", "2026-03-16", "--until", "2026-03-18")
    assert code == 0, err
    return Path(env["POINT3_WAREHOUSE"])


def _query(warehouse: Path, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def _signature(warehouse: Path, condition: str = "tax_class = 'taxable' AND class_source = 'rule'") -> str:
    [(signature,)] = _query(warehouse, f"SELECT min(signature) FROM payment_tax_split WHERE {condition}")
    assert signature is not None
    return signature


def _split(warehouse: Path, signature: str) -> tuple:
    [row] = _query(warehouse, "SELECT tax_class, class_source, classified_by, classification_note FROM payment_tax_split "
                              "WHERE signature = ?", [signature])  # fmt: skip
    return row


def test_the_split_is_built_by_the_sync_with_the_businesses_file(synced):
    rows = _query(synced, "SELECT count(*), count(business_id), count(DISTINCT business_id) FROM payment_tax_split")
    [(payments, declared, businesses)] = rows
    [(in_warehouse,)] = _query(synced, "SELECT count(*) FROM payments")
    assert payments == in_warehouse > 0 and declared > 0 and businesses > 1


def test_classify_then_undo_shows_in_the_split_at_once(synced, capsys, monkeypatch):
    monkeypatch.setattr(getpass, "getuser", lambda: "kim")
    signature = _signature(synced)
    code, out, err = run(capsys, "classify", signature, "exempt", "--note", "도서 판매")
    assert (code, err) == (0, "") and f"payment {signature} classified exempt by kim" in out
    assert _split(synced, signature) == ("exempt", "person", "kim", "도서 판매")
    published = synced.with_name("point3.published.duckdb")
    assert _split(published, signature)[:2] == ("exempt", "person")  # the analysts' copy too

    code, out, err = run(capsys, "classify", "--undo", signature, "--note", "잘못 분류", "--by", "lee")
    assert (code, err) == (0, "") and "undone" in out
    assert _split(synced, signature)[:3] == ("taxable", "rule", None)
    assert _query(synced, "SELECT action, tax_class, classified_by, note FROM payment_classifications ORDER BY 1") == [
        ("classify", "exempt", "kim", "도서 판매"), ("unclassify", None, "lee", "잘못 분류"),
    ]  # fmt: skip


def test_classifications_lists_current_ones_and_all_with_all(synced, capsys):
    first, second = (r[0] for r in _query(synced, "SELECT signature FROM payment_tax_split "
                                                  "WHERE tax_class = 'taxable' ORDER BY signature LIMIT 2"))  # fmt: skip
    code, out, _ = run(capsys, "classifications")
    assert code == 0 and out.startswith("none:")
    for signature in (first, second):
        assert run(capsys, "classify", signature, "mixed", "--note", "수수료 포함", "--by", "kim")[0] == 0
    assert run(capsys, "classify", "--undo", first, "--by", "kim")[0] == 0
    code, out, _ = run(capsys, "classifications")
    assert code == 0 and out.splitlines()[0] == "1 payments classified by a person now:"
    assert second in out and first not in out and "split: mixed" in out
    code, out, _ = run(capsys, "classifications", "--history")
    lines = out.splitlines()
    assert lines[0].startswith("3 every classify and undo") and len(lines) == 4
    assert " unclassify " in lines[3] and first in lines[3]


def test_classify_from_a_csv_records_every_line(synced, capsys, tmp_path):
    signatures = [r[0] for r in _query(synced, "SELECT signature FROM payment_tax_split WHERE tax_class = 'taxable' "
                                               "ORDER BY signature LIMIT 3")]  # fmt: skip
    path = tmp_path / "classes.csv"
    path.write_text("signature,tax_class,note\n" + "".join(f"{s},exempt,\"면세, 도서\"\n" for s in signatures), encoding="utf-8")
    code, out, err = run(capsys, "classify", "--csv", str(path), "--by", "kim")
    assert (code, err) == (0, "") and out.startswith("3 payments classified from")
    assert {_split(synced, s)[:2] for s in signatures} == {("exempt", "person")}


def test_a_csv_with_bad_lines_records_nothing_and_names_each(synced, capsys, tmp_path):
    good = _signature(synced)
    path = tmp_path / "classes.csv"
    path.write_text(f"signature,tax_class,note\n{good},exempt,ok\nnope,exempt,x\n{good},vat,y\n", encoding="utf-8")
    code, _, err = run(capsys, "classify", "--csv", str(path), "--by", "kim")
    assert code == 1
    assert_one_line(err, "nothing was recorded", "line 3", "'nope'", "line 4", "tax class")
    assert _query(synced, "SELECT count(*) FROM payment_classifications") == [(0,)]


@pytest.mark.parametrize(("argv", "what"), [
    (["classify", "SIG", "exempt"], "--note"),
    (["classify", "SIG", "exempt", "--note", "  "], "--note"),
    (["classify", "SIG", "vat", "--note", "x"], "CLASS must be taxable, exempt or mixed"),
    (["classify", "SIG"], "SIGNATURE and CLASS"),
    (["classify"], "SIGNATURE and CLASS"),
    (["classify", "--undo", "SIG", "--csv", "x.csv"], "one of"),
    (["classify", "SIG", "exempt", "--undo", "SIG"], "one of"),
    (["classify", "--csv", "x.csv", "--note", "why"], "note column"),
    (["export", "filing"], "--period"),
    (["export", "filing", "--period", "2026-13"], "--period"),
    (["export", "filing", "--period", "2026-03", "--encoding", "latin-1"], "--encoding"),
    (["export", "filing", "--period", "2099"], "has not begun"),
    (["report", "vat", "--period", "2026-03"], "a quarter (YYYY-Qn)"),
    (["report", "vat"], "--period"),
    (["report", "reconciliation", "--period", "2026-Q1"], "a month (YYYY-MM)"),
    (["report", "tax", "--period", "2026-Q5"], "--period"),
    (["report", "tax", "--month", "2099-01"], "has not begun"),
])  # fmt: skip
def test_a_mistake_in_a_tax_command_is_one_line_naming_it(env, capsys, argv, what):  # noqa: F811
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert_one_line(err, what)


def test_classify_an_unknown_payment_is_one_sentence(synced, capsys):
    code, _, err = run(capsys, "classify", "no-such-signature", "exempt", "--note", "x", "--by", "kim")
    assert code == 1
    assert_one_line(err, "no payment with signature 'no-such-signature'")


def test_undo_without_a_classification_is_one_sentence(synced, capsys):
    signature = _signature(synced)
    code, _, err = run(capsys, "classify", "--undo", signature, "--by", "kim")
    assert code == 1
    assert_one_line(err, signature, "no classification by a person to undo")


def test_classify_a_class_the_figures_cannot_carry_is_one_sentence(synced, capsys):
    signature = "impossible-vat"
    with Warehouse(synced, businesses=[]).connect() as conn:
        insert_payment(conn, signature, 1000, 800, 200)  # VAT above 1/11 of the price
    code, _, err = run(capsys, "classify", signature, "mixed", "--note", "x", "--by", "kim")
    assert code == 1
    assert_one_line(err, signature, "VAT is too large for mixed")


def test_a_missing_csv_is_one_sentence(synced, capsys, tmp_path):
    code, _, err = run(capsys, "classify", "--csv", str(tmp_path / "none.csv"), "--by", "kim")
    assert code == 1
    assert_one_line(err, "none.csv", "cannot be read")


def test_without_an_os_user_classify_asks_for_by(synced, capsys, monkeypatch):
    def no_user():
        raise KeyError("getpwuid(): uid not found: 1234")

    monkeypatch.setattr(getpass, "getuser", no_user)
    code, _, err = run(capsys, "classify", _signature(synced), "exempt", "--note", "x")
    assert code == 2
    assert_one_line(err, "--by NAME")


def test_a_bad_businesses_file_is_one_sentence_before_anything_is_read(env, capsys, tmp_path, monkeypatch):  # noqa: F811
    bad = tmp_path / "businesses.toml"
    bad.write_text('[[business]]\nid = "a"\nname = "A"\nregistration_number = "123-45-67890"\n', encoding="utf-8")
    monkeypatch.setenv("POINT3_BUSINESSES", str(bad))
    code, _, err = run(capsys, "sync", "--since", "2026-03-16", "--until", "2026-03-18")
    assert code == 2
    assert_one_line(err, str(bad), "registration_number")
    assert not Path(env["POINT3_WAREHOUSE"]).exists()


def test_export_filing_writes_a_file_per_business_into_the_periods_folder(synced, capsys, env):  # noqa: F811
    code, out, err = run(capsys, "export", "filing", "--period", MARCH)
    assert (code, err) == (0, "")
    folder = Path(env["POINT3_REPORTS_DIR"]) / MARCH
    files = sorted(folder.glob("filing_20260301-20260331_*.csv"))
    [(declared,)] = _query(synced, "SELECT count(DISTINCT business_id) FROM business_declarations")
    assert len(files) >= declared > 1 and out.startswith(f"{len(files)} filing file(s) for {MARCH} (utf-8-sig)")
    assert all(f.read_bytes().startswith(b"\xef\xbb\xbf") for f in files)
    # every line of every file together is the month's filing figures
    lines = [row for f in files for row in csv.DictReader(f.read_text(encoding="utf-8-sig").splitlines())]
    total = sum(int(row["합계금액"]) - int(row["취소합계금액"]) for row in lines)
    assert [(total,)] == _query(synced, "SELECT CAST(sum(net_total) AS BIGINT) FROM tax_filing_daily "
                                        "WHERE filing_date BETWEEN DATE '2026-03-01' AND DATE '2026-03-31'")  # fmt: skip


def test_export_filing_in_cp949_into_a_folder_given(synced, capsys, tmp_path):
    out_dir = tmp_path / "for-the-accountant"
    code, _, err = run(capsys, "export", "filing", "--period", "2026-Q1", "--out", str(out_dir), "--encoding", "cp949")
    assert (code, err) == (0, "")
    files = sorted(out_dir.glob("filing_20260101-20260331_*.csv"))
    assert files and all(f.read_bytes().decode("cp949").startswith("일자,사업자등록번호") for f in files)


def test_export_filing_into_a_file_is_one_sentence(synced, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run(capsys, "export", "filing", "--period", MARCH, "--out", str(blocker))
    assert code == 1
    assert_one_line(err, str(blocker), "give a folder")


@pytest.mark.parametrize(("argv", "label"), [
    (["report", "tax", "--period", MARCH], MARCH),
    (["report", "tax", "--month", MARCH], MARCH),  # the old name
    (["report", "vat", "--period", "2026-Q1"], "2026-Q1"),
])  # fmt: skip
def test_report_takes_a_period(synced, capsys, env, argv, label):  # noqa: F811
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    assert f"report {label} v1 written" in out
    assert list((Path(env["POINT3_REPORTS_DIR"]) / label).glob(f"point3-*-{label}-v1.xlsx"))


def test_status_shows_the_split_per_business_and_unclassified_as_not_final(synced, capsys):
    code, out, _ = run(capsys, "status")
    assert code == 0 and "tax split (filing figures" in out
    warehouse = Warehouse(synced, businesses=businesses_from_env())
    with warehouse.connect() as conn:  # shaped like point3's doc examples: vat 0, taxFreeAmount 0
        insert_payment(conn, "docs-shaped", 5000, 0, 0, day=dt.date(2026, 3, 17))
    warehouse.refresh_derived()
    # As if on April 10th: the sandbox's March is the last quarter, Q2 the current one.
    text = format_status(warehouse, today=dt.date(2026, 4, 10))
    current, last = text.split("tax split")[1].split("2026-Q1 ")
    assert ", to date: NOT final" in current and ", last quarter: NOT final" in last
    assert "2026-Q2 " in current and "no sales or cancellations" in current
    [(unclassified,)] = _query(synced, "SELECT CAST(sum(payment_count + canceled_count) AS BIGINT) FROM tax_filing_daily "
                                       "WHERE tax_class = 'unclassified' AND filing_date < DATE '2026-04-01'")  # fmt: skip
    assert unclassified == 1
    assert f"NOT final: 87 of 90 days without a complete sync; {unclassified:,} unclassified" in last.splitlines()[0]
    businesses = _query(synced, """
        SELECT business_name, registration_number, sum(net_taxable_supply), sum(net_vat), sum(net_exempt_amount),
               sum(net_unclassified_amount)
        FROM tax_filing_daily WHERE business_id IS NOT NULL GROUP BY ALL ORDER BY 1""")
    assert len(businesses) > 1
    for name, number, taxable, vat, exempt, unclassified_won in businesses:
        assert (f"{name} ({number[:3]}-{number[3:5]}-{number[5:]}): taxable supply {taxable:,} won, VAT {vat:,} won, "
                f"exempt {exempt:,} won, unclassified {unclassified_won:,} won") in last


def test_status_for_one_period(synced, capsys):
    code, out, err = run(capsys, "status", "--period", MARCH)
    assert (code, err) == (0, "")
    split = out.split("tax split")[1]
    assert split.splitlines()[1].startswith(f"  {MARCH} 2026년 3월: NOT final: 28 of 31 days without a complete sync")
    [(taxable,)] = _query(synced, "SELECT CAST(sum(net_taxable_supply) AS BIGINT) FROM tax_filing_daily "
                                  "WHERE filing_month = DATE '2026-03-01'")  # fmt: skip
    listed = sum(int(m.replace(",", "")) for m in re.findall(r"taxable supply ([\d,-]+) won", split))
    assert listed == taxable > 0
