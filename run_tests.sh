#!/usr/bin/env bash
# Sets up .venv like run_all.sh, then runs every test (unit, data, pipeline, notebooks).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec python -m pytest "$@"
