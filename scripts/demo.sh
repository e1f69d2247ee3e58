#!/usr/bin/env bash
# The whole pipeline once, through Dagster, against a local sandbox with demo data:
# backfill every day (one run), derived tables, a settlement observation, last month's
# reports, the analysts' copy. Outputs: warehouse/ and reports/ (both git-ignored).
# DEMO_DAYS (default 100) and DEMO_PER_DAY (default 40) size the demo history.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

days=${DEMO_DAYS:-100}
per_day=${DEMO_PER_DAY:-40}
export DAGSTER_HOME="$PWD/.dagster_home"
tmp=$(mktemp -d)
sandbox_pid=
cleanup() {
  if [ -n "$sandbox_pid" ]; then kill "$sandbox_pid" 2>/dev/null || true; wait "$sandbox_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The sandbox's output names its key, so it goes to a log, not the terminal.
.venv/bin/point3 sandbox --port 0 --days "$days" --per-day "$per_day" --ready-file "$tmp/ready.json" >"$tmp/sandbox.log" 2>&1 &
sandbox_pid=$!
for _ in $(seq 100); do
  [ -f "$tmp/ready.json" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || { cat "$tmp/sandbox.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$tmp/ready.json" ] || { echo "demo: the sandbox did not start within 10 s" >&2; exit 1; }

# The key reaches the pipeline through a private temp file, never through config or argv.
read -r url first today last_month < <(.venv/bin/python - "$tmp" "$days" <<'PY'
import datetime as dt, json, os, sys
from pathlib import Path
from point3_pipeline.sync import kst_now
tmp, days = Path(sys.argv[1]), int(sys.argv[2])
ready = json.loads((tmp / "ready.json").read_text())
key_file = tmp / "key"
key_file.touch(mode=0o600)
key_file.write_text(ready["key"])
today = kst_now().date()
last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
print(ready["url"], today - dt.timedelta(days=days - 1), today, last_month)
PY
)
export POINT3_API_URL="$url" POINT3_SECRET_KEY_FILE="$tmp/key" POINT3_START_DATE="$first"
export POINT3_WAREHOUSE="$PWD/warehouse/point3.duckdb" POINT3_REPORTS_DIR="$PWD/reports"
unset POINT3_SECRET_KEY

# A fresh start: the sandbox's history is generated around today, so an older demo's
# warehouse and workbooks would not match it.
rm -f warehouse/point3.duckdb warehouse/point3.duckdb.wal warehouse/point3.published.duckdb
rm -rf reports/20??-?? reports/index.html

step() {  # step "what" dagster-args...: one `dagster asset materialize`, its log kept aside
  local what=$1 started=$SECONDS; shift
  printf '%-62s' "$what"
  if .venv/bin/dagster asset materialize -m dagster_project.definitions "$@" >"$tmp/step.log" 2>&1; then
    echo "ok ($((SECONDS - started)) s)"
  else
    echo "FAILED"; tail -n 40 "$tmp/step.log" >&2; exit 1
  fi
}

echo "point3 demo: sandbox at $url, history $first .. $today ($days days, ~$per_day payments a day)"
step "backfill $first...$today (one run)" --select point3_payments --partition-range "$first...$today"
step "derived tables + settlement balance" --select payment_cancellations,culture_vat_breakdown,settlement_balance_history
step "reports for ${last_month:0:7}" --select monthly_tax_report,monthly_reconciliation_report --partition "$last_month"
step "analysts' copy" --select analyst_warehouse_copy

echo
.venv/bin/point3 status
echo
echo "warehouse:       $POINT3_WAREHOUSE"
echo "analysts' copy:  ${POINT3_WAREHOUSE%.duckdb}.published.duckdb"
find reports -name '*.xlsx' | sort | sed 's/^/report:          /'
echo "report index:    $PWD/reports/index.html"
echo "Dagster runs:    $DAGSTER_HOME"
echo "to see it in the Dagster UI (with its own sandbox): scripts/ui.sh, then open http://127.0.0.1:3000"
