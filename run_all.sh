#!/usr/bin/env bash
# The main job: set up .venv if needed, then regenerate results, tables and figures for
# one profile. Defaults to the smoke profile (embedded benchmark, CPU, no download).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'USAGE'
usage: ./run_all.sh [--profile smoke|bench|paper|FILE.yaml] [--data-root DIR] [--datasets a,b]
                    [--targets P,S] [--methods mmd,cadm] [--ipc 1,10] [--stages STAGE,...]
                    [--fresh]

  --profile    profiles/<name>.yaml (default: smoke = embedded benchmark on the CPU)
  --data-root  folder holding PACS/, VLCS/, office_home/, domain_net/ (DomainBed layout);
               needed by every profile that uses real data
  --datasets, --targets, --methods, --ipc, --stages
               run only these cells of the profile (comma-separated)
  --fresh      delete results/<profile>/ and runs/<profile>/ first: regenerate everything
Finished cells are reused; an interrupted run resumes. Results go to results/<profile>/,
tables and figures to figures/<profile>/. Committed results whose records are complete
are rendered as they are (nothing is retrained for them).
USAGE
}

profile=smoke; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --profile|--data-root|--datasets|--targets|--methods|--ipc|--stages)
      [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; } ;;&
    --profile) profile="$2"; shift 2 ;;
    --data-root)
      [ -d "$2" ] || { echo "error: data root not found: '$2'" >&2; exit 2; }
      extra+=(--data-root "$(cd "$2" && pwd)"); shift 2 ;;
    --datasets|--targets|--methods|--ipc|--stages)
      extra+=("$1" "$2"); shift 2 ;;
    --fresh) extra+=(--fresh); shift ;;
    *) echo "error: unknown option '$1' (see ./run_all.sh --help)" >&2; exit 2 ;;
  esac
done

source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
# checks the profile and cells first (bad input stops here), then runs the six notebooks
python scripts/run_notebooks.py --profile "$profile" "${extra[@]}"
name="$(basename "$profile" .yaml)"
echo "done: tables and figures in figures/$name/, records in results/$name/," \
     "executed notebooks in runs/$name/notebooks/" >&2
