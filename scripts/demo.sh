#!/usr/bin/env bash
# The whole pipeline once, through Dagster, against a local sandbox serving three merchants
# (DEMO_MERCHANTS, default 3; 1 runs the single merchant `default` as before), each with its
# own key, history and businesses: backfill every merchant's days (one run doing the merchants
# at once), derived tables with each merchant's tax split, a settlement observation, each
# merchant's balance history and bank deposits imported (as a merchant would bring its earlier
# observations and its bank's export), last month's reports, the last quarter's VAT workbook
# and filing export, the analysts' copies, then `point3 status --all`. Outputs: merchants/<id>/
# (warehouse, published copy, reports; git-ignored).
# DEMO_DAYS (default 100) and DEMO_PER_DAY (default 40) size the demo history.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

source scripts/sandbox-env.sh

# Several merchants: each has its own contract with point3 (fee, fee VAT, credit delay, payout
# schedule), which the sandbox wrote into its merchants-file entry, as a merchant declares it.
# One merchant: point3 keeps 3% of each sale plus 10% VAT on it, declared by the variables.
if [ "$merchant_count" -eq 1 ]; then
  export POINT3_FEE_PERCENT=3 POINT3_FEE_VAT=yes
  .venv/bin/python - "$url" <<'PY'
import sys, httpx
httpx.post(f"{sys.argv[1]}/_sandbox/settlement", params={"merchant": 1},
           json={"fee_ppm": 30_000, "fee_vat": True}).raise_for_status()
PY
fi

# A fresh start: the sandbox's history is generated around today, so an older demo's
# warehouses and workbooks would not match it.
rm -rf merchants
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
read -r -a id_list <<<"$ids"
one=${id_list[0]} last=${id_list[-1]}  # a range of merchants: the first to the last in the file
echo "point3 demo: sandbox at $url, merchants ${ids// /, }, history $first .. $today ($days days, ~$per_day payments a day)"
step "backfill $first...$today, every merchant (one run)" \
  --select point3_payments --partition-range "$first|$one...$today|$last"
step "derived tables, tax split + settlement balance" \
  --select payment_cancellations,payment_tax_split,culture_vat_breakdown,settlement_balance_history \
  --partition-range "$one...$last"
printf '%-62s' "import balance history and bank deposits"
n=0
for id in $ids; do
  n=$((n + 1))
  .venv/bin/python - "$url" "$first" "$tmp/$id" "$n" <<'PY'
import sys, httpx
from point3_pipeline.sync import kst_now
url, first, prefix, n = sys.argv[1:]
params = {"startDate": f"{first}T00:00:00", "endDate": f"{kst_now():%Y-%m-%dT%H:%M:%S}", "merchant": n}
for name, query in (("balances.csv", {}), ("deposits.csv", {"encoding": "cp949"})):
    with open(f"{prefix}-{name}", "wb") as out:
        out.write(httpx.get(f"{url}/_sandbox/{name.replace('balances', 'balance-history')}",
                            params={**params, **query}).raise_for_status().content)
PY
  .venv/bin/point3 --merchant "$id" settlement import "$tmp/$id-balances.csv" >"$tmp/import.log" 2>&1 && \
    .venv/bin/point3 --merchant "$id" deposits import "$tmp/$id-deposits.csv" >>"$tmp/import.log" 2>&1 \
    || { echo FAILED; cat "$tmp/import.log" >&2; exit 1; }
done
echo "ok"
for id in $ids; do
  step "$id: reports for ${last_month:0:7}" --select monthly_tax_report,monthly_reconciliation_report \
    --partition "$last_month|$id"
done
# The demo's history begins inside the last quarter, so Dagster has no partition for it (only
# periods lying whole after the first day): the command line renders it, marked not final.
# One merchant at a time: `--all` renders workbooks on threads, which openpyxl's temporary
# sheet files do not survive yet (the lead knows).
for id in $ids; do
  printf "%-62s" "$id: VAT workbook $last_quarter, filing export ${last_month:0:7}"
  .venv/bin/point3 --merchant "$id" report vat --period "$last_quarter" >"$tmp/vat.log" 2>&1 \
    && .venv/bin/point3 --merchant "$id" export filing --period "${last_month:0:7}" >"$tmp/export.log" 2>&1 \
    && echo ok || { echo FAILED; cat "$tmp/vat.log" "$tmp/export.log" >&2 2>/dev/null; exit 1; }
done
step "analysts' copies" --select analyst_warehouse_copy --partition-range "$one...$last"

# The reports portal's own folder: its settings (the merchants file without the keys, which the
# portal never reads), its store and a demo person who may see every merchant, whose password
# is written to a private file, never put on a command line. scripts/portal.sh serves it.
printf '%-62s' "reports portal: demo user"
portal_dir="$PWD/merchants/_portal"
mkdir -p "$portal_dir"
{
  echo "POINT3_PORTAL_DB=$(printf '%q' "$portal_dir/portal.db")"
  if [ "$merchant_count" -gt 1 ]; then
    cp "$POINT3_MERCHANTS" "$portal_dir/merchants.toml"
    cp -r "$(dirname "$POINT3_MERCHANTS")/businesses" "$portal_dir/"
    echo "POINT3_MERCHANTS=$(printf '%q' "$portal_dir/merchants.toml")"
  else
    for name in POINT3_API_URL POINT3_START_DATE POINT3_WAREHOUSE POINT3_REPORTS_DIR POINT3_BUSINESSES; do
      echo "$name=$(printf '%q' "${!name}")"
    done
  fi
} >"$portal_dir/portal.env"
.venv/bin/python - "$portal_dir/demo-password" <<'PY'
import os, secrets, sys
with os.fdopen(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
    out.write(secrets.token_urlsafe(12) + "\n")
PY
merchant_options=()
for id in $ids; do merchant_options+=(--merchant "$id"); done
(unset $(compgen -v POINT3_); set -a; source "$portal_dir/portal.env"; set +a
 .venv/bin/point3 users add demo "${merchant_options[@]}" --password-file "$portal_dir/demo-password") \
  >"$tmp/users.log" 2>&1 && echo ok || { echo FAILED; cat "$tmp/users.log" >&2; exit 1; }

echo
.venv/bin/python - "${last_month:0:7}" <<'PY'
import os, sys
from point3_pipeline import config
from point3_pipeline.merchants import load_merchants
from point3_pipeline.reports import render_reconciliation_report

month = sys.argv[1]  # rendered by Dagster above: this returns that version's figures
for m in load_merchants().merchants:
    t = render_reconciliation_report(m.warehouse(), month, m.reports_dir, terms=config.reconciliation_terms({**os.environ, **m.environment()})).totals
    if "opening_balance" in t:
        print(f"{m.id} reconciliation {month}: opening {t['opening_balance']:,} + sales {t['payments_in']:,} "
              f"- cancellations {t['cancellations_out']:,} - fees {t['fees']:,} - payouts {t['payouts']:,} "
              f"= closing {t['closing_balance']:,} won; unexplained {t['unexplained']:,} won; "
              f"{t['payouts_matched']} of {t['payout_count']} payouts matched to bank deposits")
    else:
        print(f"{m.id} reconciliation {month}: no balance observed")
PY
echo
for id in $ids; do
  echo "$id:"
  .venv/bin/point3 --merchant "$id" status --period "${last_month:0:7}" | sed 's/^/  /'
done
echo
.venv/bin/point3 status --all
echo
find merchants reports -name '*.xlsx' 2>/dev/null | sort | sed 's/^/report:          /'
find merchants reports -name 'filing_*.csv' 2>/dev/null | sort | sed 's/^/filing export:   /'
echo "merchants:       $PWD/merchants/<id>/ (warehouse/, its published copy, reports/index.html)"
echo "Dagster runs:    $DAGSTER_HOME"
echo "to see it in the Dagster UI (with its own sandbox): scripts/ui.sh, then open http://127.0.0.1:3000"
echo "reports portal:  scripts/portal.sh, then open http://127.0.0.1:${PORTAL_PORT:-8040} as the user demo," \
  "password $(cat "$portal_dir/demo-password") (kept in $portal_dir/demo-password)"
