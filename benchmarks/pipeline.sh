#!/usr/bin/env bash
# Pipeline budget: `make demo` from a fresh clone, stage by stage, with wall time and peak memory,
# then the time of a no-op `dvc repro`. Goal on 2 CPU cores: ≤ 15 min in all, ≤ 15 s for the no-op.
#
#   bash benchmarks/pipeline.sh [--keep]      # clones HEAD into a temporary folder, installs afresh
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
KEEP="${1:-}"
trap '[[ "$KEEP" == "--keep" ]] || rm -rf "$WORK"' EXIT
git clone -q "$REPO" "$WORK/clone"
cd "$WORK/clone"

fmt() { awk -v s="$1" 'BEGIN { t = int(s * 10 + 0.5); printf "%dm%04.1fs", int(t / 600), (t % 600) / 10 }'; }
start=$(date +%s.%N)
make install >/dev/null
install_s=$(echo "$(date +%s.%N) - $start" | bc)
export PATH="$PWD/.venv/bin:$PATH"
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR="$PWD/.cache/ultralytics" MPLCONFIGDIR="$PWD/.cache/matplotlib" \
  HF_HUB_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true DVC_NO_ANALYTICS=1 NO_ALBUMENTATIONS_UPDATE=1

printf '| stage | wall | peak RSS |\n|---|---|---|\n'
printf '| `make install` (fresh .venv) | %s | |\n' "$(fmt "$install_s")"
total=0
for stage in $(python - <<'PY'
import networkx as nx
from dvc.repo import Repo

graph = Repo(".").index.graph  # edges point from a stage to the stages it depends on
for stage in reversed(list(nx.topological_sort(graph))):
    print(stage.addressing)
PY
); do
  log="$WORK/$stage.time"
  /usr/bin/time -v -o "$log" dvc repro -s -q "$stage" >/dev/null
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
  secs=$(echo "$wall" | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f MiB", $2 / 1024}' "$log")
  total=$(echo "$total + $secs" | bc)
  printf '| %s | %s | %s |\n' "$stage" "$(fmt "$secs")" "$rss"
done
printf '| **all stages** | **%s** | |\n' "$(fmt "$total")"
start=$(date +%s.%N)
dvc repro -q >/dev/null
printf '| no-op `dvc repro` | %s | |\n' "$(fmt "$(echo "$(date +%s.%N) - $start" | bc)")"
[[ "$KEEP" == "--keep" ]] && echo "kept the clone in $WORK/clone" >&2 || true
