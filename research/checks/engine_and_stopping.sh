#!/usr/bin/env bash
# The engine's steps and its stopping rule, on the GPU machine, in one call: research/experiments/engine_steps.py
# (which step of the engine moves the independent check's layers), then the A/A check of
# scripts/checks/aa_check.sh (three default sweeps, the first from an empty cache, timed; compare of every
# pair), then a fourth default sweep timed per phase (sweep_phases.py). Full log under $OUT, summary last.
# Usage (from the repository root): OUT=/some/dir bash research/checks/engine_and_stopping.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv
  GEMMBENCH_CACHE_DIR=/tmp/gemmbench-steps-cache gb ext build >/dev/null 2>&1
  echo "== engine_steps.py"; t0=$(ms)
  GEMMBENCH_CACHE_DIR=/tmp/gemmbench-steps-cache python3 research/experiments/engine_steps.py "$OUT"
  echo "engine_steps: $(( $(ms) - t0 )) ms"
} 2>&1 | tee "$OUT/engine_and_stopping.log"
STEPS=sweeps bash scripts/checks/aa_check.sh
{
  echo "== sweep 4 (phases)"; t0=$(ms)
  GEMMBENCH_CACHE_DIR=/tmp/gemmbench-aa-cache python3 research/checks/sweep_phases.py "$OUT/phases.md" \
    sweep --quiet --out-dir /tmp/gemmbench-phases
  echo "sweep 4: $(( $(ms) - t0 )) ms"
} 2>&1 | tee -a "$OUT/engine_and_stopping.log"
echo "== summary"
grep -E "^(engine_steps|sweep 4):|^\|" "$OUT/engine_and_stopping.log" | tail -40
cat "$OUT/phases.md"
