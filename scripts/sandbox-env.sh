# Sourced by scripts/demo.sh and scripts/ui.sh: starts a sandbox with demo data in the
# background (stopped when the calling script exits) and exports the POINT3_* settings for it.
# DEMO_MERCHANTS (default 3) merchants, each with its own key and history: the sandbox writes
# the merchants file (POINT3_MERCHANTS), their key files (0600) and businesses files into a
# private temp folder; their warehouses and reports go under merchants/ (git-ignored). With
# DEMO_MERCHANTS=1, the single merchant `default` of the POINT3_* variables, as before.
# Keys reach the pipeline through private files, never through config or argv.
# Sets: url, first (first day of history), today, last_month (first day of last month), ids.
days=${DEMO_DAYS:-100}
per_day=${DEMO_PER_DAY:-40}
merchant_count=${DEMO_MERCHANTS:-3}
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
many=()
[ "$merchant_count" -gt 1 ] && many=(--merchants "$merchant_count" --write-merchants "$tmp/merchants" --merchants-root "$PWD/merchants")
.venv/bin/point3 sandbox --port 0 --days "$days" --per-day "$per_day" "${many[@]}" --ready-file "$tmp/ready.json" >"$tmp/sandbox.log" 2>&1 &
sandbox_pid=$!
for _ in $(seq 100); do
  [ -f "$tmp/ready.json" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || { cat "$tmp/sandbox.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$tmp/ready.json" ] || { echo "the sandbox did not start within 10 s" >&2; exit 1; }

read -r url first today last_month < <(.venv/bin/python - "$tmp" "$days" <<'PY'
import datetime as dt, json, sys
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
export POINT3_BUSINESSES="$PWD/docs/demo-businesses.toml"  # the sandbox's businesses, for the tax split
unset POINT3_SECRET_KEY
if [ "$merchant_count" -gt 1 ]; then
  export POINT3_MERCHANTS="$tmp/merchants/merchants.toml"
  ids=$(.venv/bin/python -c "from point3_pipeline.merchants import load_merchants; print(' '.join(m.id for m in load_merchants().merchants))")
else
  unset POINT3_MERCHANTS
  ids=default
fi
