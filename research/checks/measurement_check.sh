#!/usr/bin/env bash
# The measurement checks of docs/validation.md in one call on the GPU machine: GPU tests, the timer
# validation, the graph-sizing and power-drift tables, and the DeepSeek-V3 sweep twice (cold) and
# once hot. Full log under $OUT, summary last.
# Usage (from the repository root): OUT=/some/dir bash research/checks/measurement_check.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  gb ext build
  echo "== GPU tests"
  python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tail -5
  echo "== graph size against device time at small M (hot)"
  python3 research/experiments/graph_sizing.py "$OUT"
  echo "== a large router GEMM at the power cap, window by window"
  python3 research/experiments/power_drift.py "$OUT"
  echo "== timer validation"
  python3 research/checks/validate_timers.py "$OUT"
  echo "== repeatability: the DeepSeek-V3 sweep, all real backends, kernel pass, twice cold and once hot"
  for run in cold1 cold2; do
    t0=$(ms)
    gb sweep --preset deepseek-v3 --out-dir "$OUT/$run" --quiet > "$OUT/$run.txt"
    echo "$run sweep wall time: $(( $(ms) - t0 )) ms"
  done
  t0=$(ms)
  gb sweep --preset deepseek-v3 --hot --out-dir "$OUT/hot" --quiet > /dev/null
  echo "hot sweep wall time: $(( $(ms) - t0 )) ms"
  python3 research/checks/repeatability.py "$OUT"/cold1/*.json "$OUT"/cold2/*.json --hot "$OUT"/hot/*.json
} 2>&1 | tee "$OUT/measurement.log"
