#!/usr/bin/env bash
# Creates .venv on first use and re-installs when pyproject.toml or constraints.txt change.
# Sourced by ./run.sh and ./test.sh. torch is pinned through constraints.txt (ENVIRONMENT.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.tapecast-install-stamp"
want="$(cat "$root/pyproject.toml" "$root/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "tapecast: creating $venv (first use; about 2 minutes)" >&2
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "tapecast: installing the package and its dependencies into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$root/constraints.txt" -e "$root[dev]" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
