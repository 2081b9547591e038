#!/usr/bin/env bash
# How long a new user waits (docs/measurement.md), on the GPU machine in one call: the extension build and
# a first default sweep from an empty cache (shipped tuning files only), the same sweep again, the kernel
# pass of three points, two back-to-back default sweeps' repeatability, the whole test suite with its
# slowest tests, and `gemmbench tune` over every preset (a tuning file to ship). Full log under $OUT.
# Usage (from the repository root): OUT=/some/dir [STEPS="sweeps kernels tests tune"] bash scripts/checks/speed_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
STEPS=${STEPS:-"sweeps kernels tests tune"}
export GEMMBENCH_CACHE_DIR="$OUT/cache"  # empty at the start: what a new user's machine has
PRESETS=$(python3 -c "from gemmbench.spec.presets import preset_names; print(' '.join(preset_names()))")

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  t0=$(ms)
  gb ext build > /dev/null
  echo "ext build (empty cache) wall time: $(( $(ms) - t0 )) ms"
  if [[ $STEPS == *sweeps* ]]; then
    for run in first again; do
      t0=$(ms)
      gb sweep --preset deepseek-v3 --out-dir "$OUT/$run" --quiet > "$OUT/$run.txt"
      echo "sweep $run wall time: $(( $(ms) - t0 )) ms"
    done
    echo "== the two sweeps, first against again"
    python3 scripts/checks/repeatability.py "$OUT"/first/*.json "$OUT"/again/*.json
  fi
  if [[ $STEPS == *kernels* ]]; then
    t0=$(ms)
    gb kernels --preset deepseek-v3 --m 1,16,4096 > "$OUT/kernels.txt"
    echo "kernels (3 points) wall time: $(( $(ms) - t0 )) ms"
  fi
  if [[ $STEPS == *tests* ]]; then
    t0=$(ms)
    python3 -m pytest -q -p no:cacheprovider --durations=25 tests 2>&1 | tail -40
    echo "pytest wall time: $(( $(ms) - t0 )) ms"
  fi
  if [[ $STEPS == *tune* ]]; then
    presets=(); for p in $PRESETS; do presets+=(-p "$p"); done
    t0=$(ms)
    gb tune "${presets[@]}" --out "$OUT/router_small_m_nvidia-h200.json" --quiet
    echo "tune (every preset) wall time: $(( $(ms) - t0 )) ms"
  fi
} 2>&1 | tee "$OUT/speed_check.log"

echo "== summary"
grep -E "wall time|\|B/A - 1\||passed|failed" "$OUT/speed_check.log"
