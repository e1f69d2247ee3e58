#!/usr/bin/env bash
# Re-resolve pyproject.toml's ranges (with the test extra) in a scratch venv and write requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3.11 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install -q ".[test]"
{
  echo "# The exact, tested dependency set (Python 3.11). scripts/setup.sh installs it into .venv."
  echo "# Regenerate after changing pyproject.toml: scripts/lock.sh"
  "$scratch/venv/bin/pip" freeze --exclude-editable | grep -v '^point3-pipeline'
} > requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages"
