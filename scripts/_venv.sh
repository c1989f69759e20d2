# Sourced by scripts/demo and scripts/test: create .venv if missing and install the project
# (again only when pyproject.toml changed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=".venv/.stepwise-installed"
want="$(sha256sum pyproject.toml | cut -c1-64)-${STEPWISE_EXTRAS:-dev}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet -e ".[${STEPWISE_EXTRAS:-dev}]"
  echo "$want" > "$stamp"
fi
