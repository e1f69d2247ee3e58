"""Bank deposits and balance observations imported from CSV files, matching, and the
reconciliation's version fingerprint, on warehouses built row by row."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest

from point3_pipeline import cli, config
from point3_pipeline.deposits import Deposit, import_deposits, match
from point3_pipeline.imports import ImportRefused, import_balances
from point3_pipeline.reports import render_reconciliation_report
from point3_pipeline.rollforward import BusinessFee, Payout, Terms, percent_text
from tests.report_fixtures import Books, kst

NOW = kst(2025, 12, 2, 9)
BANK = (
    "계좌번호,123-456-789012\n"
    "조회기간,2025.11.01 ~ 2025.11.30\n"
    "거래일시,적요,출금액,입금액,잔액,내용,거래점\n"
    '2025.11.05 09:00:00,타행이체,0,"1,000,000","2,000,000",포인트쓰리정산,인터넷\n'
    "2025.11.06 10:00:00,체크카드,5000,0,1995000,편의점,\n"
    '2025.11.12 09:00:00,타행이체,0,"1,200,000","3,195,000",포인트쓰리정산,인터넷\n'
)


def _count(warehouse, table: str) -> int:
    with warehouse.connect(read_only=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def books(tmp_path):
    return Books(tmp_path / "wh.duckdb")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949"])
def test_bank_csv_in_each_encoding_imports_once(books, tmp_path, encoding):
    wh = books.refresh()
    path = tmp_path / "bank.csv"
    path.write_bytes(BANK.encode(encoding))
    first = import_deposits(wh, path, now=NOW)
    assert (first.data_lines, first.added, first.duplicates, first.skipped) == (3, 2, 0, 1)
    assert first.encoding == {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "cp949": "cp949"}[encoding]
    again = import_deposits(wh, path, now=NOW)
    assert (again.added, again.duplicates) == (0, 2)
    assert _count(wh, "bank_deposits") == 2 and _count(wh, "reconciliation_imports") == 2


def test_an_overlapping_export_adds_only_the_new_days(books, tmp_path):
    wh = books.refresh()
    early, late = tmp_path / "early.csv", tmp_path / "late.csv"
    early.write_text(BANK, encoding="utf-8")
    lines = BANK.splitlines()
    late.write_text("\n".join([*lines[2:3], *lines[5:6],
                               '2025.11.19 09:00:00,타행이체,0,"900,000","4,095,000",포인트쓰리정산,인터넷']) + "\n")
    import_deposits(wh, early, now=NOW)
    result = import_deposits(wh, late, now=NOW)
    assert (result.added, result.duplicates) == (1, 1)
    assert _count(wh, "bank_deposits") == 3


def test_identical_same_day_deposits_are_told_apart(books, tmp_path):
    wh = books.refresh()
    # no time, no running balance: the n-th identical line is the n-th deposit
    two = "거래일자,입금액,적요\n2025.11.05,10000,이체\n2025.11.05,10000,이체\n"
    path = tmp_path / "two.csv"
    path.write_text(two)
    assert import_deposits(wh, path, now=NOW).added == 2
    three = tmp_path / "three.csv"
    three.write_text(two + "2025.11.05,10000,이체\n")
    result = import_deposits(wh, three, now=NOW)
    assert (result.added, result.duplicates) == (1, 2)
    # with the running balance, identical amounts differ by it
    balanced = tmp_path / "balanced.csv"
    balanced.write_text("거래일자,입금액,잔액\n2025.11.06,10000,20000\n2025.11.06,10000,30000\n")
    assert import_deposits(wh, balanced, now=NOW).added == 2


@pytest.mark.parametrize(("line", "says"), [
    ("2025.13.05 09:00:00,이체,0,1000,1000,x,y", "거래일시 '2025.13.05 09:00:00' is not a date"),
    ("2025.11.05 09:00:00,이체,0,1.000,1000,x,y", "입금액 '1.000' is not a whole number of won"),
    ("2025.11.05 09:00:00,이체,0,-1000,1000,x,y", "입금액 '-1000' is not a whole number of won"),
    ("2025.11.05 09:00:00,이체,500,1000,1000,x,y", "both 입금액 and 출금액"),
])  # fmt: skip
def test_a_bad_line_refuses_the_whole_file(books, tmp_path, line, says):
    wh = books.refresh()
    path = tmp_path / "bad.csv"
    path.write_text(BANK + line + "\n")
    with pytest.raises(ImportRefused) as refused:
        import_deposits(wh, path, now=NOW)
    assert "nothing was imported" in str(refused.value) and f"line 7: {says}" in str(refused.value)
    assert _count(wh, "bank_deposits") == 0 and _count(wh, "reconciliation_imports") == 0


def test_files_that_are_not_bank_exports_get_one_sentence(books, tmp_path):
    wh = books.refresh()
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ImportRefused, match="no header line with 거래일시"):
        import_deposits(wh, path, now=NOW)
    path.write_bytes(b"\xff\xfe\x00\x00binary")
    with pytest.raises(ImportRefused, match="neither UTF-8 nor CP949"):
        import_deposits(wh, path, now=NOW)
    with pytest.raises(ImportRefused, match="cannot be read"):
        import_deposits(wh, tmp_path / "missing.csv", now=NOW)


def test_balance_import_skips_duplicates_and_reports_conflicts(books, tmp_path):
    books.observation(kst(2025, 11, 3, 10, 2), 50_000)
    wh = books.refresh()
    path = tmp_path / "balances.csv"
    path.write_text(
        "observed_at,balance\n"
        "2025-11-03T10:02:00+09:00,50000\n"  # the stored API observation: a duplicate
        "2025-11-03T11:00:00+09:00,61000\n"
        "2025-11-03 12:00:00,61000\n"  # no zone: KST
        "2025-11-03T03:00:00Z,99\n"  # 12:00 KST again, another balance: a conflict
    )
    result = import_balances(wh, path, now=NOW)
    assert (result.added, result.duplicates, len(result.conflicts)) == (2, 1, 1)
    assert "conflicts with the stored 61,000" in result.conflicts[0]
    with wh.connect(read_only=True) as conn:
        rows = conn.execute("SELECT observed_at, balance, source FROM settlement_balance_history ORDER BY 1").fetchall()
    assert [(r[1], r[2]) for r in rows] == [(50_000, "api"), (61_000, "imported"), (61_000, "imported")]
    assert import_balances(wh, path, now=NOW).added == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("observed_at,balance\n2025-11-04T10:00:00+09:00,1\nyesterday,2\n2030-01-01T00:00:00+09:00,3\n")
    with pytest.raises(ImportRefused) as refused:
        import_balances(wh, bad, now=NOW)
    assert "line 3: observed_at 'yesterday' is not a time" in str(refused.value)
    assert "line 4: observed_at 2030-01-01T00:00:00+09:00 is in the future" in str(refused.value)
    assert _count(wh, "imported_settlement_observations") == 2


def test_imported_observations_are_marked_in_the_workbook(books, tmp_path):
    books.observation(kst(2025, 11, 30, 23, 40), 0)
    wh = books.refresh()
    path = tmp_path / "balances.csv"
    path.write_text("observed_at,balance\n2025-10-31T23:30:00+09:00,0\n")
    import_balances(wh, path, now=NOW)
    result = render_reconciliation_report(wh, "2025-11", tmp_path / "r", now=NOW)
    assert result.totals["opening_balance"] == 0 and result.totals["imported_observation_count"] == 0
    from openpyxl import load_workbook

    sources = [r[2].value for r in load_workbook(result.path)["잔액 관측"].iter_rows() if r[2].value in ("API", "가져옴 (imported)")]
    assert sources == ["가져옴 (imported)", "API"]


def test_cli_imports_and_refuses(books, tmp_path, monkeypatch, capsys):
    wh = books.refresh()
    monkeypatch.setenv("POINT3_WAREHOUSE", str(wh.path))
    path = tmp_path / "bank.csv"
    path.write_text(BANK)
    assert cli.main(["deposits", "import", str(path)]) == 0
    assert "2 deposits added, 0 already stored, 1 withdrawals skipped" in capsys.readouterr().out
    path.write_text(BANK + "garbage,line\n")
    assert cli.main(["deposits", "import", str(path)]) == 1
    assert "nothing was imported" in capsys.readouterr().err
    balances = tmp_path / "b.csv"
    balances.write_text("observed_at,balance\n2025-11-01T00:00:00+09:00,5\n")
    assert cli.main(["settlement", "import", str(balances)]) == 0
    assert "1 observations added" in capsys.readouterr().out


def _payout(day: int, amount: int) -> Payout:
    by = kst(2025, 11, day)
    return Payout(by - dt.timedelta(minutes=30), by, amount, None, None)  # type: ignore[arg-type]


def _deposit(day: int, amount: int, hour: int = 9) -> Deposit:
    at = kst(2025, 11, day, hour)
    return Deposit(f"k{day}-{amount}", at, at.date(), True, amount, "", "", "", None)


@pytest.mark.parametrize(("payouts", "deposits", "pairs"), [
    ([(5, 1000)], [(5, 1000)], [(5, 5, 0)]),
    ([(5, 1000)], [(8, 1000)], [(5, 8, 0)]),  # the window's last day
    ([(5, 1000)], [(9, 1000)], [(5, None, None), (None, 9, None)]),  # one day too late
    ([(5, 1000)], [(4, 1000)], [(5, None, None), (None, 4, None)]),  # before the payout
    ([(5, 100_000)], [(6, 99_000)], [(5, 6, -1000)]),  # close: paired with the difference
    ([(5, 100_000)], [(6, 50_000)], [(5, None, None), (None, 6, None)]),  # far: each alone
    ([(5, 1000), (6, 1000)], [(6, 1000), (7, 1000)], [(5, 6, 0), (6, 7, 0)]),  # in time order
])  # fmt: skip
def test_matching(payouts, deposits, pairs):
    result = match([_payout(*p) for p in payouts], [_deposit(*d) for d in deposits], 3)
    got = [(m.payout.by.day if m.payout else None, m.deposit.deposit_date.day if m.deposit else None, m.difference)
           for m in result]  # fmt: skip
    assert got == pairs


# --- the version fingerprint covers what the workbook shows, before and after the month ----------


def _november(tmp_path) -> Books:
    books = Books(tmp_path / "wh.duckdb")
    books.observation(kst(2025, 10, 31, 22, 10), 10_000)  # the opening rests on it (slot 22:00)
    books.payment("late-oct", kst(2025, 10, 31, 23, 10), total=11_000)  # between it and the month
    books.observation(kst(2025, 11, 15, 12, 5), 21_000)
    books.observation(kst(2025, 12, 1, 0, 20), 21_000)  # the closing rests on it (slot 00:00)
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 11, 30))
    return books


@pytest.mark.parametrize("change", ["observation before", "payment before", "observation after", "deposit", "terms"])
def test_a_change_around_the_month_makes_a_new_version(tmp_path, change):
    books = _november(tmp_path)
    wh = books.refresh()
    first = render_reconciliation_report(wh, "2025-11", tmp_path / "r", now=NOW)
    assert first.totals["opening_balance"] == 21_000 and first.totals["unexplained"] == 0
    assert not render_reconciliation_report(wh, "2025-11", tmp_path / "r", now=NOW).created
    terms = None
    if change == "observation before":
        books.observation(kst(2025, 10, 31, 23, 50), 25_000)
    elif change == "payment before":
        books.payment("late-oct-2", kst(2025, 10, 31, 23, 20), total=5_000)
    elif change == "observation after":
        books.observation(kst(2025, 12, 1, 0, 25), 20_000)
    elif change == "deposit":
        path = tmp_path / "bank.csv"
        path.write_text("거래일자,입금액\n2025.11.20,7000\n")
        import_deposits(books.refresh(), path, now=NOW)
    else:
        terms = Terms(fee_ppm=10_000)
    wh = books.refresh()
    second = render_reconciliation_report(wh, "2025-11", tmp_path / "r", now=NOW, terms=terms)
    assert second.created and second.version == 2


# --- settings and small pieces --------------------------------------------------------------------


@pytest.mark.parametrize(("env", "terms"), [
    ({}, Terms()),
    ({"POINT3_FEE_PERCENT": "3.3", "POINT3_FEE_VAT": "yes"}, Terms(fee_ppm=33_000, fee_vat=True)),
    ({"POINT3_FEE_PERCENT": "0.0275", "POINT3_FEE_VAT": "no"}, Terms(fee_ppm=275)),
    ({"POINT3_FEE_PERCENT": "2.5%"}, Terms(fee_ppm=25_000)),
    ({"POINT3_CREDIT_DELAY_DAYS": "2", "POINT3_DEPOSIT_MATCH_DAYS": "5", "POINT3_UNEXPLAINED_THRESHOLD_WON": "1,000",
      "POINT3_PAYOUT_DEPOSIT_DAYS": "7"}, Terms(credit_delay_days=2, match_days=5, unexplained_threshold=1_000,
                                                 deposit_overdue_days=7)),
])  # fmt: skip
def test_reconciliation_settings(env, terms):
    assert config.reconciliation_terms(env) == terms


def test_a_business_fee_comes_from_the_businesses_file(tmp_path):
    path = tmp_path / "businesses.toml"
    entry = ('[[business]]\nid = "shop"\nname = "책방"\nregistration_number = "101-81-12341"\n'
             'taxpayer_type = "일반과세자"\nsales = "by_vat"\nclient_nickname = ["책방", "책방 2호점"]\n')
    path.write_text(entry + 'fee_percent = "1.5"\n', encoding="utf-8")
    env = {"POINT3_BUSINESSES": str(path), "POINT3_FEE_PERCENT": "3.3", "POINT3_FEE_VAT": "yes"}
    assert config.reconciliation_terms(env).business_fees == (
        BusinessFee("책방", None, 15_000, True), BusinessFee("책방 2호점", None, 15_000, True))
    path.write_text(entry + "fee_percent = 1.5\n", encoding="utf-8")  # a TOML float: refused
    with pytest.raises(config.ConfigError, match='fee_percent must be a percent .* written as a string, such as "3.3", not 1.5'):
        config.reconciliation_terms(env)


@pytest.mark.parametrize(("variable", "value"), [
    ("POINT3_FEE_PERCENT", "3.33333"), ("POINT3_FEE_PERCENT", "abc"), ("POINT3_FEE_PERCENT", "100"),
    ("POINT3_FEE_PERCENT", "0.033e1"), ("POINT3_FEE_VAT", "maybe"), ("POINT3_CREDIT_DELAY_DAYS", "-1"),
    ("POINT3_DEPOSIT_MATCH_DAYS", "61"), ("POINT3_UNEXPLAINED_THRESHOLD_WON", "1.5"), ("POINT3_PAYOUT_DEPOSIT_DAYS", "x"),
])  # fmt: skip
def test_a_bad_reconciliation_setting_is_one_sentence(variable, value):
    with pytest.raises(config.ConfigError) as error:
        config.reconciliation_terms({variable: value})
    message = str(error.value)
    assert message.startswith(variable) and repr(value) in message and "\n" not in message


@pytest.mark.parametrize(("ppm", "text"), [(0, "0%"), (33_000, "3.3%"), (275, "0.0275%"), (250_000, "25%"),
                                           (Fraction(36_301, 1), "3.6301%"), (Fraction(-5, 3), "-0.0002%")])
def test_percent_text(ppm, text):
    assert percent_text(ppm) == text


@pytest.mark.parametrize(("fee_ppm", "fee_vat", "total", "kept"), [
    (33_000, False, 10_000, 330), (33_000, True, 10_000, 363), (25_000, False, 1_550, 39),  # 38.75 -> 39
    (25_000, True, 1_550, 43), (0, True, 99_000, 0), (30_000, True, 15, 0),
])  # fmt: skip
def test_sandbox_fee_rounds_half_up_like_the_pipeline(fee_ppm, fee_vat, total, kept):
    from point3_pipeline.sandbox.settlement import SettlementTerms

    assert SettlementTerms(fee_ppm=fee_ppm, fee_vat=fee_vat).fee(total) == kept


def test_sandbox_admin_settlement_exports(tmp_path):
    import httpx

    from tests.conftest import make_sandbox

    with make_sandbox(days=20, per_day=10) as server:
        bad = httpx.post(server.url + "/_sandbox/settlement", json={"payout": "monthly"})
        assert bad.status_code == 400 and "payout must be one of weekly, daily" in bad.json()["message"]
        terms = httpx.post(server.url + "/_sandbox/settlement", json={"fee_ppm": 30_000, "differing_deposit_on": "2026-03-11"})
        assert terms.json()["result"]["fee_ppm"] == 30_000
        window = {"startDate": "2026-03-01T00:00:00", "endDate": "2026-03-18T00:00:00"}
        history = httpx.get(server.url + "/_sandbox/balance-history.csv", params=window).text.splitlines()
        assert history[0] == "observed_at,balance" and len(history) == 1 + 17 * 48
        assert history[1].startswith("2026-03-01T00:00:00+09:00,")
        csv_bytes = httpx.get(server.url + "/_sandbox/deposits.csv", params={**window, "encoding": "cp949"}).content
        path = tmp_path / "bank.csv"
        path.write_bytes(csv_bytes)
    wh = Books(tmp_path / "wh.duckdb").refresh()
    result = import_deposits(wh, path, now=NOW.replace(year=2026, month=3, day=20))
    # the Wednesdays' payouts; the 18th's deposit (09:00) is after the export's end
    assert result.encoding == "cp949" and result.added == 2
    with wh.connect(read_only=True) as conn:
        days = [d for (d,) in conn.execute("SELECT deposit_date FROM bank_deposits ORDER BY 1").fetchall()]
    assert days == [dt.date(2026, 3, 4), dt.date(2026, 3, 11)]
