#!/usr/bin/env bash
# The Dagster UI (dagster dev) against a local sandbox, on the demo's warehouse/ and reports/.
# Ctrl-C stops both. UI_PORT (default 3000), DEMO_DAYS and DEMO_PER_DAY as for scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

days=${DEMO_DAYS:-100}
per_day=${DEMO_PER_DAY:-40}
port=${UI_PORT:-3000}
export DAGSTER_HOME="$PWD/.dagster_home"
tmp=$(mktemp -d)
sandbox_pid=
cleanup() {
  if [ -n "$sandbox_pid" ]; then kill "$sandbox_pid" 2>/dev/null || true; wait "$sandbox_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The sandbox runs in the background (its output names its key, so it goes to a log)...
.venv/bin/point3 sandbox --port 0 --days "$days" --per-day "$per_day" --ready-file "$tmp/ready.json" >"$tmp/sandbox.log" 2>&1 &
sandbox_pid=$!
for _ in $(seq 100); do
  [ -f "$tmp/ready.json" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || { cat "$tmp/sandbox.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$tmp/ready.json" ] || { echo "ui: the sandbox did not start within 10 s" >&2; exit 1; }

read -r url first < <(.venv/bin/python - "$tmp" "$days" <<'PY'
import datetime as dt, json, sys
from pathlib import Path
from point3_pipeline.sync import kst_now
tmp, days = Path(sys.argv[1]), int(sys.argv[2])
ready = json.loads((tmp / "ready.json").read_text())
key_file = tmp / "key"
key_file.touch(mode=0o600)
key_file.write_text(ready["key"])
print(ready["url"], kst_now().date() - dt.timedelta(days=days - 1))
PY
)
export POINT3_API_URL="$url" POINT3_SECRET_KEY_FILE="$tmp/key" POINT3_START_DATE="$first"
export POINT3_WAREHOUSE="$PWD/warehouse/point3.duckdb" POINT3_REPORTS_DIR="$PWD/reports"
unset POINT3_SECRET_KEY

echo "point3 UI: sandbox at $url, history from $first; Dagster UI at http://127.0.0.1:$port (Ctrl-C stops both)"
# ...and dagster dev in the foreground: it gets the terminal's Ctrl-C itself and shuts down
# its webserver and daemon cleanly (a backgrounded one would ignore SIGINT and SIGTERM).
# From DAGSTER_HOME, so it does not warn about the repository's own dagster.yaml (the template).
root=$PWD
(cd "$DAGSTER_HOME" && "$root/.venv/bin/dagster" dev -w "$root/workspace.yaml" -h 127.0.0.1 -p "$port")
