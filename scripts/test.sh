#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh) and the browser test's Chromium (scripts/setup-browser.sh), and
# runs the whole test suite, slow tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-browser.sh
export DAGSTER_HOME="$PWD/.dagster_home"
exec .venv/bin/python -m pytest "$@"
