#!/usr/bin/env bash
# Sets up .venv at the repository root from requirements.lock and installs this project into it.
# Safe to run again: it does nothing when the lock and pyproject.toml have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
if [ -z "$python" ]; then
  echo "setup: no python3 found; install Python 3.11 first" >&2
  exit 1
fi

stamp=".venv/.installed-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# Dagster's instance settings (one writer at a time, telemetry off) live in .dagster_home.
mkdir -p .dagster_home
cp dagster.yaml .dagster_home/dagster.yaml
