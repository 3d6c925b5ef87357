#!/usr/bin/env bash
# The main job: set up .venv if needed, then regenerate results, tables and figures for
# one profile. Defaults to the smoke profile (embedded benchmark, CPU, no download).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'USAGE'
usage: ./run_all.sh [--profile smoke|paper|FILE.yaml] [--data-root DIR] [--datasets a,b]
                    [--targets P,S] [--methods mmd,cadm] [--ipc 1,10] [--stages table1,...]

  --profile    profiles/<name>.yaml (default: smoke = embedded benchmark on the CPU)
  --data-root  folder holding PACS/, VLCS/, office_home/, domain_net/ (DomainBed layout);
               needed by every profile that uses real data
  --datasets, --targets, --methods, --ipc, --stages
               run only these cells of the profile (comma-separated)
Finished cells are reused; an interrupted run resumes. Results go to results/<profile>/,
tables and figures to figures/<profile>/.
USAGE
}

profile=smoke; extra=(); params=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --profile) profile="${2:?--profile needs a value}"; shift 2 ;;
    --data-root)
      [ -d "${2:?--data-root needs a value}" ] || { echo "error: data root not found: $2" >&2; exit 2; }
      root="$(cd "$2" && pwd)"; extra+=(--data-root "$root"); params+=(-p data_root "$root"); shift 2 ;;
    --datasets|--targets|--methods|--ipc|--stages)
      value="${2:?$1 needs a value}"; extra+=("$1" "$value")
      name="${1#--}"; [ "$name" = ipc ] && name=ipcs
      params+=(-r "$name" "$value"); shift 2 ;;
    *) echo "error: unknown option '$1' (see ./run_all.sh --help)" >&2; exit 2 ;;
  esac
done

source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
python -m cadm_utils check --profile "$profile" "${extra[@]}"   # fails fast on bad input

name="$(basename "$profile" .yaml)"
executed="$ROOT/runs/$name/notebooks"
mkdir -p "$executed"
notebooks=(01_pretrain 02_distill 03_evaluate 04_channel_activation 05_umap 06_tables)
for i in "${!notebooks[@]}"; do
  nb="${notebooks[$i]}"
  echo "[$((i + 1))/${#notebooks[@]}] $nb" >&2
  papermill "notebooks/$nb.ipynb" "$executed/$nb.ipynb" --log-output --no-progress-bar \
    -p profile "$profile" -p progress True "${params[@]}"
done
echo "done: tables and figures in figures/$name/, records in results/$name/," \
     "executed notebooks in runs/$name/notebooks/" >&2
