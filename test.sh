#!/usr/bin/env bash
# Quick start, command 2: the whole test suite — lint, types, tests (sets itself up on first use).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
echo "== ruff" && ruff check .
echo "== mypy" && mypy src
echo "== pytest" && exec pytest -n 2 -q "$@"
