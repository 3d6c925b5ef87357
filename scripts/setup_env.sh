# Sourced by run_all.sh and run_tests.sh: make .venv (Python 3.11, pip) if it is missing
# and install cadm_utils with the pinned dependencies when the pins changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CADM_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

find_python() {
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 is needed to create $VENV (none found on PATH)" >&2
  return 1
}

if [ ! -x "$PY" ]; then
  base_python="$(find_python)"
  echo "setup: creating $VENV with $base_python" >&2
  "$base_python" -m venv "$VENV"
fi

stamp="$VENV/.cadm-installed"
wanted="$(cat "$ROOT/pyproject.toml" "$ROOT/requirements-lock.txt" | sha1sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing cadm_utils and pinned dependencies into $VENV" >&2
  "$PY" -m pip install --quiet --disable-pip-version-check -c "$ROOT/requirements-lock.txt" \
    -e "$ROOT[dev]"
  "$PY" -m ipykernel install --prefix "$VENV" --name python3 >/dev/null 2>&1 || true
  echo "$wanted" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
