#!/usr/bin/env bash
# The reports portal on the demo's merchants, after scripts/demo.sh: `point3 serve` on 127.0.0.1 in
# loopback demo mode (cookies without TLS, which the portal allows on a loopback address alone),
# with the settings the demo wrote to merchants/_portal/portal.env. PORTAL_PORT (default 8040).
# Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
settings=merchants/_portal/portal.env
[ -f "$settings" ] || { echo "portal: $settings is missing: run scripts/demo.sh first, which writes it." >&2; exit 1; }
# The demo's settings alone, not a POINT3_* variable of this shell.
unset $(compgen -v POINT3_) 2>/dev/null || true
set -a
source "$settings"
set +a
port=${PORTAL_PORT:-8040}
echo "point3 reports portal at http://127.0.0.1:$port (the demo user and its password: see scripts/demo.sh's last lines)"
exec .venv/bin/point3 serve --host 127.0.0.1 --port "$port" --insecure-loopback-demo
