#!/usr/bin/env bash
# Quick start, command 1: the main job (sets itself up on first use).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
exec tapecast demo "$@"
