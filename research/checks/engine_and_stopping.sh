#!/usr/bin/env bash
# The engine's steps and its stopping rule, on the GPU machine, in one call: research/experiments/engine_steps.py
# (which step of the engine moves the independent check's layers), placement_modes.py (what a placement's
# time follows), two default sweeps with their samples kept, the first timed per phase, and
# stopping_replay.py on the two. Full log under $OUT, summary last.
# Usage (from the repository root): OUT=/some/dir bash research/checks/engine_and_stopping.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"
export GEMMBENCH_CACHE_DIR=${GEMMBENCH_CACHE_DIR:-/tmp/gemmbench-cache}
WORK=${WORK:-/tmp/gemmbench-steps}
rm -rf "$WORK"
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv
  gb ext build >/dev/null 2>&1 || gb ext build
  echo "== engine_steps.py"; t0=$(ms)
  python3 research/experiments/engine_steps.py "$OUT"; echo "engine_steps: $(( $(ms) - t0 )) ms"
  echo "== placement_modes.py"; t0=$(ms)
  python3 research/experiments/placement_modes.py "$OUT"; echo "placement_modes: $(( $(ms) - t0 )) ms"
  echo "== sweep 1 (phases)"; t0=$(ms)
  python3 research/checks/sweep_phases.py "$OUT/phases.md" sweep --quiet --keep-samples --out-dir "$WORK/r1"
  echo "sweep 1: $(( $(ms) - t0 )) ms"; cp "$(ls "$WORK"/r1/*.json)" "$OUT/run1.json"
  echo "== sweep 2"; t0=$(ms)
  gb sweep --quiet --keep-samples --out-dir "$WORK/r2" >/dev/null
  echo "sweep 2: $(( $(ms) - t0 )) ms"; cp "$(ls "$WORK"/r2/*.json)" "$OUT/run2.json"
  echo "== stopping_replay.py"
  python3 research/experiments/stopping_replay.py "$OUT/run1.json" "$OUT/run2.json"
} 2>&1 | tee "$OUT/engine_and_stopping.log"
echo "== summary"
grep -E "^(engine_steps|placement_modes|sweep [12]):|^\|" "$OUT/engine_and_stopping.log" | tail -70
