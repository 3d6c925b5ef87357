#!/usr/bin/env bash
# One budgeted slice of GPU time (docs/gpu.md, "A budgeted run"): the machine, the step timings of
# benchmarks/step_speed.py, then the budgeted paper run, all logged to $OUT/window.log; the
# export (rewritten after every finished cell) goes to $OUT/export. Pass the commit along
# (CADM_COMMIT=...): the tree travels without .git. Settings through the environment:
#   BUDGET (6m), PROFILE (gpu-short), DATA_ROOT (data/pacs-64; empty: none), DATASETS (pacs),
#   STEP_SPEED_ARGS (--device cuda --steps 50 --sync-audit), STEP_SPEED_LIMIT (120 s),
#   RESULTS_DIR (results/<profile>).
# The export's limits are those of the machine that sends $OUT back: at most 8 files of at
# most 16 MiB, 64 MiB together. Parts of 16 MiB and 48 MiB of products leave room for the
# previous generation while a new one is written, the step timings and the log.
set -uo pipefail
OUT="${OUT:?set OUT to the folder that comes back}"
mkdir -p "$OUT"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
{
  echo "commit ${CADM_COMMIT:-unknown}, started $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__)"
  start=$SECONDS
  # shellcheck disable=SC2086  # the arguments are meant to split
  timeout "${STEP_SPEED_LIMIT:-120}" "$PY" benchmarks/step_speed.py \
    ${STEP_SPEED_ARGS:---device cuda --steps 50 --sync-audit} --out "$OUT/step_speed.jsonl"
  echo "step_speed: exit $?, $((SECONDS - start)) s"
  start=$SECONDS
  folders=()
  [ -n "${DATA_ROOT-data/pacs-64}" ] && folders=(--data-root "${DATA_ROOT-data/pacs-64}")
  [ -n "${RESULTS_DIR:-}" ] && folders+=(--results-dir "$RESULTS_DIR")
  "$PY" -m cadm_utils run --profile "${PROFILE:-gpu-short}" "${folders[@]}" \
    --datasets "${DATASETS:-pacs}" --time-budget "${BUDGET:-6m}" --export "$OUT/export" \
    --export-part-mib 16 --export-max-mib 48
  echo "budgeted run: exit $?, $((SECONDS - start)) s, ended $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/window.log"
