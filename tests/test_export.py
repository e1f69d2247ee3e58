"""The filing export: per-business CSVs of tax_filing_daily, read back in both encodings."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from point3_pipeline.businesses import Business, load_businesses
from point3_pipeline.export import EXPORT_COLUMNS, ExportError, export_filing
from point3_pipeline.warehouse import Warehouse
from tests.tax_fixtures import DEMO_BUSINESSES, frozen_sandbox, insert_payment, refresh, synced  # noqa: F401

FIRST, LAST = dt.date(2026, 3, 1), dt.date(2026, 3, 31)


def read_export(path, encoding: str) -> list[dict]:
    text = path.read_bytes().decode({"utf-8": "utf-8-sig", "cp949": "cp949"}[encoding])
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("encoding", ["utf-8", "cp949"])
def test_round_trip_equals_the_warehouse_per_business(frozen_sandbox, tmp_path, encoding):  # noqa: F811
    businesses = load_businesses(DEMO_BUSINESSES)
    warehouse = synced(frozen_sandbox, tmp_path, businesses)
    out = tmp_path / "out"
    with warehouse.connect(read_only=True) as conn:
        paths = export_filing(conn, FIRST, LAST, out, encoding)
        expected = {
            number: figures for number, *figures in conn.execute(
                "SELECT registration_number, count(*), sum(payment_count), sum(taxable_supply), sum(vat), "
                "sum(exempt_amount), sum(canceled_total) FROM tax_filing_daily WHERE filing_date BETWEEN ? AND ? "
                "GROUP BY registration_number", [FIRST, LAST]
            ).fetchall()
        }
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # no temporary files left
    assert len(paths) == len(businesses) == 6
    got = {}
    for path in paths:
        lines = read_export(path, encoding)
        assert lines and list(lines[0]) == [h for h, _ in EXPORT_COLUMNS]
        numbers = {line["사업자등록번호"] for line in lines}
        assert len(numbers) == 1 and path.name.endswith(f"_{numbers.pop().replace('-', '')}.csv")
        number = lines[0]["사업자등록번호"].replace("-", "")
        got[number] = [len(lines)] + [sum(int(line[h]) for line in lines)
                                      for h in ("건수", "공급가액", "부가세", "면세금액", "취소합계금액")]
        assert all(dt.date.fromisoformat(line["일자"]) <= LAST for line in lines)
    assert got == expected
    if encoding == "utf-8":
        assert paths[0].read_bytes().startswith(b"\xef\xbb\xbf")


def test_undeclared_businesses_get_their_own_files_and_declared_ones_a_file_even_without_sales(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "A", 11000, 10000, 1000, nickname="가게", day=dt.date(2026, 3, 2))
        insert_payment(conn, "B", 15000, 14909, 91, nickname="책방", day=dt.date(2026, 3, 3))
    quiet = Business("quiet", "조용한 상점", "1248100998", "면세사업자", "all_exempt", ("없는 가게",))
    refresh(warehouse, [quiet])
    with warehouse.connect(read_only=True) as conn:
        paths = export_filing(conn, FIRST, LAST, tmp_path / "out")
    by_name = {p.name: read_export(p, "utf-8") for p in paths}
    assert by_name.pop("filing_20260301-20260331_1248100998.csv") == []
    assert len(by_name) == 2 and all(name.startswith("filing_20260301-20260331_undeclared-") for name in by_name)
    assert sorted((line["상호"], line["과세구분코드"], line["사업자등록번호"]) for lines in by_name.values()
                  for line in lines) == [("가게", "taxable", ""), ("책방", "mixed", "")]


def test_text_cp949_cannot_hold_is_a_clear_error_and_writes_nothing(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "A", 11000, 10000, 1000, nickname="가게", day=dt.date(2026, 3, 2))
        insert_payment(conn, "B", 11000, 10000, 1000, nickname="극장 🎭", day=dt.date(2026, 3, 5))
    refresh(warehouse)
    out = tmp_path / "out"
    with warehouse.connect(read_only=True) as conn:
        with pytest.raises(ExportError, match=r"line 2 \(2026-03-05\): the 상호 text '🎭' cannot be written in CP949"):
            export_filing(conn, FIRST, LAST, out, "cp949")
        assert not out.exists() or not any(out.iterdir())
        assert len(export_filing(conn, FIRST, LAST, out, "utf-8")) == 2


def test_a_new_export_replaces_the_old_files(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "A", 11000, 10000, 1000, day=dt.date(2026, 3, 2))
    refresh(warehouse)
    out = tmp_path / "out"
    with warehouse.connect(read_only=True) as conn:
        first = export_filing(conn, FIRST, LAST, out)
    with warehouse.connect() as conn:
        insert_payment(conn, "B", 22000, 20000, 2000, day=dt.date(2026, 3, 2))
    refresh(warehouse)
    with warehouse.connect(read_only=True) as conn:
        second = export_filing(conn, FIRST, LAST, out)
    assert first == second and [line["합계금액"] for line in read_export(second[0], "utf-8")] == ["33000"]
    assert sorted(p.name for p in out.iterdir()) == [second[0].name]


@pytest.mark.parametrize(("args", "message"), [
    ((FIRST, LAST, "latin-1"), "encoding must be one of utf-8, cp949"),
    ((LAST, FIRST, "utf-8"), "first day 2026-03-31 is after its last day 2026-03-01"),
])
def test_bad_requests(tmp_path, args, message):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn, pytest.raises(ExportError, match=message):
        export_filing(conn, args[0], args[1], tmp_path, args[2])


def test_out_dir_that_is_a_file(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    (tmp_path / "taken").write_text("x")
    with warehouse.connect() as conn, pytest.raises(ExportError, match="is a file; give a folder"):
        export_filing(conn, FIRST, LAST, tmp_path / "taken")
