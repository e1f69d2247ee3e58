"""The tax split (payment_tax_split, tax_filing_daily) and a person's classifications.

Rule cases insert payments straight into a tmp_path warehouse; cancellations and totals go
through the sandbox and a real sync, so the detection bounds are the sync's own.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest

from point3_pipeline.businesses import load_businesses
from point3_pipeline.models import KST
from point3_pipeline.tax_split import ClassificationError, classify, classify_from_csv, unclassify
from point3_pipeline.warehouse import Warehouse
from tests.conftest import sandbox_days
from tests.tax_fixtures import (  # noqa: F401 (frozen_sandbox is a fixture)
    DEMO_BUSINESSES,
    amounts,
    frozen_sandbox,
    insert_payment,
    refresh,
    shop,
    split_of,
    split_rows,
    sync_days,
    synced,
)

MAX = 2**63 - 1


# --- the rule from the figures alone -----------------------------------------------------------

@pytest.mark.parametrize(("total", "tax_free", "vat", "expected"), [
    (11000, 10000, 1000, ("taxable", 10000, 1000, 0, 0)),  # r = 0
    (11005, 10005, 1000, ("taxable", 10005, 1000, 0, 0)),  # r = +5: VAT rounded down
    (11006, 10006, 1000, ("mixed", 10000, 1000, 6, 0)),  # r = +6: a 6-won exempt part
    (10995, 9995, 1000, ("taxable", 9995, 1000, 0, 0)),  # r = -5: VAT rounded up
    (10994, 9994, 1000, ("impossible_vat", 9994, 1000, 0, 0)),  # r = -6
    (15000, 14909, 91, ("mixed", 910, 91, 13999, 0)),  # a book with a 1,000-won fee
    (12000, 12000, 0, ("exempt", 0, 0, 12000, 0)),  # vat 0
    (3, 3, 0, ("exempt", 0, 0, 3, 0)),  # vat 0 wins over |r| <= 5
    (12000, 0, 0, ("unclassified", 0, 0, 0, 12000)),  # 0/0: the docs' examples
    (12000, 11000, 0, ("unclassified", 0, 0, 0, 12000)),  # vat 0 but the sum rule broken
    (1000, 0, 2000, ("unclassified", 0, 0, 0, 1000)),  # VAT above the total, sum broken
    (1550, 1277, 273, ("impossible_vat", 1277, 273, 0, 0)),  # a fee's VAT on a cheap ticket: r = -1453
    (MAX, 0, MAX, ("impossible_vat", 0, MAX, 0, 0)),  # 11 × vat beyond BIGINT: no overflow
    # The largest total: 11 × 838488366986797800 = MAX − 7, so r = 7.
    (MAX, MAX - 838488366986797800, 838488366986797800, ("mixed", 8384883669867978000, 838488366986797800, 7, 0)),
])
def test_split_rule(tmp_path, total, tax_free, vat, expected):
    row = split_of(tmp_path, total, tax_free, vat)
    assert amounts(row) == expected
    assert row["class_source"] == "rule" and row["rule_class"] == expected[0]
    assert row["taxable_supply"] + row["vat"] + row["exempt_amount"] + row["unclassified_amount"] == total
    assert row["vat_remainder"] == total - 11 * vat


@pytest.mark.parametrize(("method", "name", "unknown"), [
    ("CARD", "신용카드", False), ("EASY_PAY", "간편결제", False), ("BANK_TRANSFER", "계좌이체", False),
    ("VIRTUAL_ACCOUNT", "VIRTUAL_ACCOUNT", True), (None, "결제수단 없음", True),
])
def test_payment_method_labels(tmp_path, method, name, unknown):
    row = split_of(tmp_path, 11000, 10000, 1000, method=method)
    assert (row["payment_method_type"], row["payment_method_name"], row["is_unknown_method"]) == (method, name, unknown)


# --- declarations ------------------------------------------------------------------------------

@pytest.mark.parametrize(("sales", "figures", "expected", "conflict"), [
    ("all_taxable", (15000, 14909, 91), ("taxable", 14909, 91, 0, 0), "declared_taxable_has_exempt_part"),
    ("all_taxable", (12000, 12000, 0), ("taxable", 12000, 0, 0, 0), "declared_taxable_has_exempt_part"),
    ("all_taxable", (11000, 10000, 1000), ("taxable", 10000, 1000, 0, 0), None),
    ("all_exempt", (11000, 10000, 1000), ("exempt", 0, 0, 11000, 0), "declared_exempt_has_vat"),
    ("all_exempt", (12000, 12000, 0), ("exempt", 0, 0, 12000, 0), None),
    ("by_vat", (15000, 14909, 91), ("mixed", 910, 91, 13999, 0), None),
])
def test_declaration_overrides_the_rule(tmp_path, sales, figures, expected, conflict):
    row = split_of(tmp_path, *figures, businesses=[shop(sales)])
    assert amounts(row) == expected
    assert row["class_source"] == ("rule" if sales == "by_vat" else "declaration")
    assert row["declaration_conflict"] == conflict
    assert (row["business_id"], row["business_name"], row["registration_number"]) == ("shop", "상점 shop", "1248100998")


@pytest.mark.parametrize(("sales", "figures", "kept"), [
    ("all_taxable", (12000, 0, 0), "unclassified"),
    ("all_exempt", (1550, 1277, 273), "impossible_vat"),
])
def test_declaration_does_not_speak_for_broken_figures(tmp_path, sales, figures, kept):
    row = split_of(tmp_path, *figures, businesses=[shop(sales)])
    assert (row["tax_class"], row["class_source"], row["declaration_conflict"]) == (kept, "rule", None)


def test_declaration_matches_by_nickname_and_the_more_specific_identification(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "A", 11000, 10000, 1000, nickname="가게", identification="one")
        insert_payment(conn, "B", 11000, 10000, 1000, nickname="가게", identification="two")
        insert_payment(conn, "C", 11000, 10000, 1000, nickname="다른 가게")
    general = shop("all_exempt", id_="general", number="2208162517")
    specific = shop("all_taxable", identification="one", id_="specific")
    refresh(warehouse, [general, specific])
    rows = split_rows(warehouse)
    assert rows["A"]["business_id"] == "specific" and rows["A"]["tax_class"] == "taxable"
    assert rows["B"]["business_id"] == "general" and rows["B"]["tax_class"] == "exempt"
    assert rows["C"]["business_id"] is None and rows["C"]["business_name"] == "다른 가게"
    assert rows["C"]["class_source"] == "rule"


def test_declarations_are_replaced_at_each_refresh(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", 11000, 10000, 1000)
    refresh(warehouse, [shop("all_exempt")])
    refresh(warehouse, [])
    with warehouse.connect(read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM business_declarations").fetchone()[0] == 0
    assert split_rows(warehouse)["P1"]["tax_class"] == "taxable"


# --- a person's classification -----------------------------------------------------------------

def test_a_persons_classification_overrides_declaration_and_rule_and_can_be_undone(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "DOCS", 12000, 0, 0)
        insert_payment(conn, "BOOK", 15000, 14909, 91)
    businesses = [shop("all_taxable")]
    with warehouse.connect() as conn:
        classify(conn, "DOCS", "exempt", "도서 판매, 영수증 확인", "김회계")
        classify(conn, "BOOK", "mixed", "도서 + 배송비", "김회계")
    refresh(warehouse, businesses)
    rows = split_rows(warehouse)
    assert amounts(rows["DOCS"]) == ("exempt", 0, 0, 12000, 0)
    assert amounts(rows["BOOK"]) == ("mixed", 910, 91, 13999, 0)
    assert rows["BOOK"]["class_source"] == "person" and rows["BOOK"]["declaration_conflict"] is None
    assert (rows["DOCS"]["classified_by"], rows["DOCS"]["classification_note"]) == ("김회계", "도서 판매, 영수증 확인")
    with warehouse.connect() as conn:
        unclassify(conn, "BOOK", "김회계", "잘못 분류")
    refresh(warehouse, businesses)
    rows = split_rows(warehouse)
    assert rows["BOOK"]["class_source"] == "declaration" and rows["BOOK"]["classified_by"] is None
    with warehouse.connect(read_only=True) as conn:
        history = conn.execute(
            "SELECT action, tax_class FROM payment_classifications WHERE signature = 'BOOK' ORDER BY classification_id"
        ).fetchall()
    assert history == [("classify", "mixed"), ("unclassify", None)]


def test_the_newest_classification_wins(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", 12000, 0, 0)
        classify(conn, "P1", "exempt", "first look", "kim")
        classify(conn, "P1", "taxable", "checked the receipt", "lee")
    refresh(warehouse)
    row = split_rows(warehouse)["P1"]
    assert amounts(row) == ("taxable", 12000, 0, 0, 0) and row["classified_by"] == "lee"


def test_a_classification_survives_a_record_change_and_falls_back_when_it_no_longer_fits(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", 15000, 14909, 91)
        classify(conn, "P1", "mixed", "도서 + 배송비", "kim")
        conn.execute("UPDATE payments SET total_charge = 16000, tax_free_amount = 15909, record_hash = 'h2'")
    refresh(warehouse)
    assert amounts(split_rows(warehouse)["P1"]) == ("mixed", 910, 91, 14999, 0)
    with warehouse.connect() as conn:  # VAT now above 1/11: "mixed" cannot carry it
        conn.execute("UPDATE payments SET total_charge = 1000, tax_free_amount = 909, record_hash = 'h3'")
    refresh(warehouse)
    row = split_rows(warehouse)["P1"]
    assert (row["tax_class"], row["class_source"], row["classification_does_not_fit"]) == ("taxable", "rule", True)


@pytest.mark.parametrize(("signature", "tax_class", "note", "who", "message"), [
    ("NOPE", "taxable", "n", "kim", "no payment with signature 'NOPE'"),
    ("P1", "impossible_vat", "n", "kim", "tax class must be one of taxable, exempt, mixed"),
    ("P1", "exempt", "  ", "kim", "give a note"),
    ("P1", "exempt", "n", " ", "must not be empty"),
    ("P1", "mixed", "n", "kim", "too large for mixed"),
])
def test_classify_refuses_with_one_sentence(tmp_path, signature, tax_class, note, who, message):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", 1550, 1277, 273)
        with pytest.raises(ClassificationError, match=message):
            classify(conn, signature, tax_class, note, who)
        assert conn.execute("SELECT count(*) FROM payment_classifications").fetchone()[0] == 0


def test_unclassify_needs_a_classification(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", 11000, 10000, 1000)
        with pytest.raises(ClassificationError, match="no classification by a person to undo"):
            unclassify(conn, "P1", "kim")


def test_classify_from_csv_records_every_line(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    path = tmp_path / "classes.csv"
    path.write_bytes("\ufeffsignature,tax_class,note\nA,exempt,\"도서, 잡지\"\nB,taxable,수수료\n\n".encode("utf-8"))
    with warehouse.connect() as conn:
        insert_payment(conn, "A", 12000, 0, 0)
        insert_payment(conn, "B", 12000, 0, 0)
        assert classify_from_csv(conn, path, "kim") == 2
    refresh(warehouse)
    rows = split_rows(warehouse)
    assert (rows["A"]["tax_class"], rows["A"]["classification_note"]) == ("exempt", "도서, 잡지")
    assert rows["B"]["tax_class"] == "taxable"


def test_classify_from_csv_is_all_or_nothing_with_a_sentence_per_bad_line(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    path = tmp_path / "classes.csv"
    path.write_text("signature,tax_class,note\nA,exempt,ok\nB,free,x\nNOPE,taxable,x\nA,taxable,again\n", "utf-8")
    with warehouse.connect() as conn:
        insert_payment(conn, "A", 12000, 0, 0)
        insert_payment(conn, "B", 12000, 0, 0)
        with pytest.raises(ClassificationError) as caught:
            classify_from_csv(conn, path, "kim")
        assert conn.execute("SELECT count(*) FROM payment_classifications").fetchone()[0] == 0
    message = str(caught.value)
    assert "nothing was recorded" in message
    assert f"{path} line 3: tax class must be one of" in message
    assert f"{path} line 4: no payment with signature 'NOPE'" in message
    assert f"{path} line 5: payment 'A' is also classified on {path} line 2" in message
    assert "line 2:" not in message


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot be read"),
    (b"\xff\xfe bad", "is not UTF-8"),
    (b"sig,class,note\nA,exempt,x\n", "the first line must be the header signature,tax_class,note"),
    (b"signature,tax_class,note\n", "has a header but no classifications"),
    (b"signature,tax_class,note\nA,exempt,a,b\n", "line 2 has 4 fields"),
])
def test_classify_from_csv_bad_files(tmp_path, content, message):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    path = tmp_path / "classes.csv"
    if content is not None:
        path.write_bytes(content)
    with warehouse.connect() as conn, pytest.raises(ClassificationError, match=message):
        classify_from_csv(conn, path, "kim")


# --- through the sandbox: cancellations and totals ---------------------------------------------

def active_payment_of(server, day: dt.date) -> str:
    return next(o["signature"] for d, o in sandbox_days(server) if d == day and not o["isCanceled"])


def cancel_and_sync(server, warehouse, signature, day, businesses=()):
    server.state.cancel(signature)
    server.state.clock.advance(6 * 60)  # past point3's next 5-minute batch
    sync_days(server, warehouse, day)
    refresh(warehouse, businesses)


def filing(warehouse, first, last) -> list[tuple]:
    with warehouse.connect(read_only=True) as conn:
        return conn.execute(
            "SELECT * FROM tax_filing_daily WHERE filing_date BETWEEN ? AND ? ORDER BY ALL", [first, last]
        ).fetchall()


def test_a_cancellation_detected_in_the_next_month_belongs_to_that_month(frozen_sandbox, tmp_path):
    warehouse = synced(frozen_sandbox, tmp_path)
    february = dt.date(2026, 2, 27)
    signature = active_payment_of(frozen_sandbox, february)
    before = filing(warehouse, dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    canceled_before = day_cancellations(warehouse, dt.date(2026, 3, 18))
    cancel_and_sync(frozen_sandbox, warehouse, signature, february)
    row = split_rows(warehouse)[signature]
    assert row["cancel_date"] == frozen_sandbox.state.clock.now().date() == dt.date(2026, 3, 18)
    assert not row["cancel_date_unknown"] and not row["cancel_straddles_month"]
    assert filing(warehouse, dt.date(2026, 2, 1), dt.date(2026, 2, 28)) == before  # February is not restated
    count, total = day_cancellations(warehouse, dt.date(2026, 3, 18))
    assert (count, total) == (canceled_before[0] + 1, canceled_before[1] + row["total_charge"])


def day_cancellations(warehouse, day: dt.date) -> tuple[int, int]:
    with warehouse.connect(read_only=True) as conn:
        return conn.execute(
            "SELECT coalesce(sum(canceled_count), 0), coalesce(sum(canceled_total), 0) FROM tax_filing_daily "
            "WHERE filing_date = ?", [day]
        ).fetchone()


def test_a_cancellation_in_the_next_quarter_leaves_the_closed_quarter_unchanged(frozen_sandbox, tmp_path):
    warehouse = synced(frozen_sandbox, tmp_path)
    march = dt.date(2026, 3, 17)
    signature = active_payment_of(frozen_sandbox, march)
    quarter = (dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    before = filing(warehouse, *quarter)
    frozen_sandbox.state.clock.set_now(dt.datetime(2026, 4, 2, 10, 0, tzinfo=KST))
    sync_days(frozen_sandbox, warehouse, march)  # a sweep that still sees it active in April
    cancel_and_sync(frozen_sandbox, warehouse, signature, march)
    row = split_rows(warehouse)[signature]
    assert row["cancel_date"] == dt.date(2026, 4, 2)
    assert not row["cancel_straddles_month"] and not row["cancel_date_unknown"]
    assert filing(warehouse, *quarter) == before
    with warehouse.connect(read_only=True) as conn:
        april = conn.execute(
            "SELECT sum(payment_count), sum(canceled_count), sum(canceled_total) FROM tax_filing_daily "
            "WHERE filing_date BETWEEN DATE '2026-04-01' AND DATE '2026-06-30'"
        ).fetchone()
    assert april == (0, 1, row["total_charge"])


def test_a_cancellation_between_two_reads_across_a_boundary_is_marked(frozen_sandbox, tmp_path):
    warehouse = synced(frozen_sandbox, tmp_path)
    march = dt.date(2026, 3, 17)
    signature = active_payment_of(frozen_sandbox, march)
    frozen_sandbox.state.clock.set_now(dt.datetime(2026, 3, 31, 23, 57, tzinfo=KST))
    sync_days(frozen_sandbox, warehouse, march)  # last seen active on 31 March
    cancel_and_sync(frozen_sandbox, warehouse, signature, march)  # seen cancelled on 1 April
    row = split_rows(warehouse)[signature]
    assert row["canceled_after"].astimezone(KST).date() == dt.date(2026, 3, 31)
    assert row["cancel_date"] == dt.date(2026, 4, 1) and row["cancel_straddles_month"]
    with warehouse.connect(read_only=True) as conn:
        assert conn.execute(
            "SELECT sum(canceled_straddling_count) FROM tax_filing_daily WHERE filing_date = DATE '2026-04-01'"
        ).fetchone()[0] == 1


def test_a_payment_cancelled_before_its_first_read_belongs_to_its_own_day(frozen_sandbox, tmp_path):
    warehouse = synced(frozen_sandbox, tmp_path)
    rows = split_rows(warehouse)
    first_seen = [r for r in rows.values() if r["is_canceled"]]
    assert first_seen, "the sandbox's history has cancelled payments"
    assert all(r["cancel_date"] == r["payment_date"] and r["cancel_date_unknown"] for r in first_seen)
    assert not any(r["cancel_straddles_month"] for r in first_seen)


def expected_split(order: dict, sales: str | None) -> tuple[str, int, int, int, int]:
    """korean-vat.md's table and declarations, in Python: (class, taxable, vat, exempt, unclassified)."""
    total, tax_free, vat = order["totalCharge"], order["taxFreeAmount"], order["vat"]
    r = total - 11 * vat
    if vat + tax_free != total:
        return "unclassified", 0, 0, 0, total
    if r < -5:
        return "impossible_vat", total - vat, vat, 0, 0
    if sales == "all_taxable":
        return "taxable", total - vat, vat, 0, 0
    if sales == "all_exempt" or (vat == 0 and tax_free == total):
        return "exempt", 0, 0, total, 0
    if r <= 5:
        return "taxable", total - vat, vat, 0, 0
    return "mixed", 10 * vat, vat, r, 0


@pytest.mark.parametrize("declared", [True, False])
def test_totals_equal_an_independent_computation_per_business_and_in_total(frozen_sandbox, tmp_path, declared):
    businesses = load_businesses(DEMO_BUSINESSES) if declared else []
    by_nickname = {n: b for b in businesses for n in b.client_nicknames}
    warehouse = synced(frozen_sandbox, tmp_path, businesses)
    expected: dict[str, list[int]] = defaultdict(lambda: [0] * 8)
    classes = set()
    for _, order in sandbox_days(frozen_sandbox):
        business = by_nickname.get(order["clientNickname"])
        cls, *figures = expected_split(order, business.sales if business else None)
        classes.add(cls)
        canceled = [f if order["isCanceled"] else 0 for f in figures]
        for key in (business.name if business else order["clientNickname"], "*"):
            row = expected[key]
            row[0] += 1
            row[1] += order["isCanceled"]
            for i, value in enumerate(figures + canceled[:2]):
                row[2 + i] += value
    with warehouse.connect(read_only=True) as conn:
        got = {
            name: list(figures) for name, *figures in conn.execute(
                "SELECT coalesce(business_name, '*'), sum(payment_count), sum(canceled_count), sum(taxable_supply), "
                "sum(vat), sum(exempt_amount), sum(unclassified_amount), sum(canceled_taxable_supply), "
                "sum(canceled_vat) FROM tax_filing_daily GROUP BY ROLLUP (business_name)"
            ).fetchall()
        }
    assert got == {k: v for k, v in expected.items()}
    assert len(got) == 7  # six businesses and the key's total
    assert classes == {"taxable", "mixed", "exempt", "unclassified", "impossible_vat"}
    if declared:
        with warehouse.connect(read_only=True) as conn:
            conflicts = conn.execute(
                "SELECT DISTINCT business_id, declaration_conflict FROM payment_tax_split "
                "WHERE declaration_conflict IS NOT NULL"
            ).fetchall()
        assert ("hanbit-gallery", "declared_taxable_has_exempt_part") in conflicts


def test_filing_sums_are_hugeint_and_per_payment_amounts_bigint(frozen_sandbox, tmp_path):
    warehouse = synced(frozen_sandbox, tmp_path)
    with warehouse.connect(read_only=True) as conn:
        types = dict(conn.execute(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('payment_tax_split', 'tax_filing_daily')"
        ).fetchall())
    assert {types[f"payment_tax_split.{c}"] for c in ("taxable_supply", "vat", "exempt_amount")} == {"BIGINT"}
    assert {types[f"tax_filing_daily.{c}"] for c in ("taxable_supply", "net_vat", "canceled_total")} == {"HUGEINT"}
    assert not any(t in ("DOUBLE", "FLOAT", "DECIMAL") for t in types.values())
