#!/usr/bin/env bash
# The whole pipeline once, through Dagster, against a local sandbox with demo data:
# backfill every day (one run), derived tables with the tax split of the demo's businesses
# (docs/demo-businesses.toml), a settlement observation, the sandbox's balance history and
# bank deposits imported (as a merchant would bring its earlier observations and its bank's
# export), last month's reports, the last quarter's VAT workbook and filing export, the
# analysts' copy. Outputs: warehouse/ and reports/ (both git-ignored).
# DEMO_DAYS (default 100) and DEMO_PER_DAY (default 40) size the demo history.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

source scripts/sandbox-env.sh

# point3 keeps 3% of each sale plus 10% VAT on it (the sandbox's terms), and the merchant
# declares the same contract to the reconciliation.
export POINT3_FEE_PERCENT=3 POINT3_FEE_VAT=yes
.venv/bin/python - "$url" <<'PY'
import sys, httpx
httpx.post(f"{sys.argv[1]}/_sandbox/settlement", json={"fee_ppm": 30_000, "fee_vat": True}).raise_for_status()
PY

# A fresh start: the sandbox's history is generated around today, so an older demo's
# warehouse and workbooks would not match it.
rm -f warehouse/point3.duckdb warehouse/point3.duckdb.wal warehouse/point3.published.duckdb
rm -rf reports/20??-?? reports/20??-[QH]? reports/20?? reports/index.html

step() {  # step "what" dagster-args...: one `dagster asset materialize`, its log kept aside
  local what=$1 started=$SECONDS; shift
  printf '%-62s' "$what"
  if .venv/bin/dagster asset materialize -m dagster_project.definitions "$@" >"$tmp/step.log" 2>&1; then
    echo "ok ($((SECONDS - started)) s)"
  else
    echo "FAILED"; tail -n 40 "$tmp/step.log" >&2; exit 1
  fi
}

last_quarter=$(.venv/bin/python -c "import datetime as dt, sys; from point3_pipeline.periods import QUARTER, Period; \
q = Period.containing(QUARTER, dt.date.fromisoformat(sys.argv[1])); print(Period.containing(QUARTER, q.first - dt.timedelta(days=1)).label)" "$today")
echo "point3 demo: sandbox at $url, history $first .. $today ($days days, ~$per_day payments a day)"
step "backfill $first...$today (one run)" --select point3_payments --partition-range "$first...$today"
step "derived tables, tax split + settlement balance" \
  --select payment_cancellations,payment_tax_split,culture_vat_breakdown,settlement_balance_history
printf '%-62s' "import balance history and bank deposits"
.venv/bin/python - "$url" "$first" "$tmp" <<'PY'
import sys, httpx
from point3_pipeline.sync import kst_now
url, first, tmp = sys.argv[1:]
params = {"startDate": f"{first}T00:00:00", "endDate": f"{kst_now():%Y-%m-%dT%H:%M:%S}"}
for name, query in (("balances.csv", {}), ("deposits.csv", {"encoding": "cp949"})):
    with open(f"{tmp}/{name}", "wb") as out:
        out.write(httpx.get(f"{url}/_sandbox/{name.replace('balances', 'balance-history')}",
                            params={**params, **query}).raise_for_status().content)
PY
.venv/bin/point3 settlement import "$tmp/balances.csv" >"$tmp/import.log" 2>&1 && \
  .venv/bin/point3 deposits import "$tmp/deposits.csv" >>"$tmp/import.log" 2>&1 || { echo FAILED; cat "$tmp/import.log" >&2; exit 1; }
echo "ok"
step "reports for ${last_month:0:7}" --select monthly_tax_report,monthly_reconciliation_report --partition "$last_month"
# The demo's history begins inside the last quarter, so Dagster has no partition for it (only
# periods lying whole after POINT3_START_DATE): the command line renders it, marked not final.
printf "%-62s" "VAT workbook $last_quarter, filing export ${last_month:0:7}"
.venv/bin/point3 report vat --period "$last_quarter" >"$tmp/vat.log" 2>&1 \
  && .venv/bin/point3 export filing --period "${last_month:0:7}" >"$tmp/export.log" 2>&1 \
  && echo ok || { echo FAILED; cat "$tmp/vat.log" "$tmp/export.log" >&2 2>/dev/null; exit 1; }
step "analysts' copy" --select analyst_warehouse_copy

echo
.venv/bin/point3 status --period "${last_month:0:7}"
echo
.venv/bin/python - "${last_month:0:7}" <<'PY'
import sys
from point3_pipeline import config
from point3_pipeline.reports import render_reconciliation_report
from point3_pipeline.warehouse import Warehouse

month = sys.argv[1]  # rendered by Dagster above: this returns that version's figures
t = render_reconciliation_report(Warehouse(config.warehouse_path()), month, config.reports_dir(),
                                 terms=config.reconciliation_terms()).totals
if "opening_balance" in t:
    print(f"reconciliation {month}: opening {t['opening_balance']:,} + sales {t['payments_in']:,} "
          f"- cancellations {t['cancellations_out']:,} - fees {t['fees']:,} - payouts {t['payouts']:,} "
          f"= closing {t['closing_balance']:,} won; unexplained {t['unexplained']:,} won; "
          f"{t['payouts_matched']} of {t['payout_count']} payouts matched to bank deposits")
else:
    print(f"reconciliation {month}: no balance observed")
PY
echo
echo "warehouse:       $POINT3_WAREHOUSE"
echo "analysts' copy:  ${POINT3_WAREHOUSE%.duckdb}.published.duckdb"
find reports -name '*.xlsx' | sort | sed 's/^/report:          /'
find reports -name 'filing_*.csv' | sort | sed 's/^/filing export:   /'
echo "report index:    $PWD/reports/index.html"
echo "Dagster runs:    $DAGSTER_HOME"
echo "to see it in the Dagster UI (with its own sandbox): scripts/ui.sh, then open http://127.0.0.1:3000"
