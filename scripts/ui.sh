#!/usr/bin/env bash
# The Dagster UI (dagster dev) against a local sandbox of DEMO_MERCHANTS (default 3) merchants, on
# the demo's merchants/<id>/ folders (DEMO_MERCHANTS=1: warehouse/ and reports/).
# Ctrl-C stops both. UI_PORT (default 3000), DEMO_DAYS and DEMO_PER_DAY as for scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

port=${UI_PORT:-3000}
source scripts/sandbox-env.sh

echo "point3 UI: sandbox at $url, merchants ${ids// /, }, history from $first; Dagster UI at http://127.0.0.1:$port (Ctrl-C stops both)"
# The sandbox runs in the background; dagster dev in the foreground gets the terminal's Ctrl-C itself and shuts down
# its webserver and daemon cleanly (a backgrounded one would ignore SIGINT and SIGTERM).
# From DAGSTER_HOME, so it does not warn about the repository's own dagster.yaml (the template).
root=$PWD
(cd "$DAGSTER_HOME" && "$root/.venv/bin/dagster" dev -w "$root/workspace.yaml" -h 127.0.0.1 -p "$port")
