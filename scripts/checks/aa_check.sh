#!/usr/bin/env bash
# The A/A check of docs/measurement.md in one call on the GPU machine: the extension build and three default
# sweeps, each in its own process, from an empty cache (the first tunes what no shipped tuning file covers),
# timed; then aa_table.py over them (compare of every pair, the mm_out_dtype probe inside every interval, throttle
# flags) and, with STEPS containing tests, the whole test suite. Under $OUT (few files: the device
# machine returns only a handful): aa_check.log, aa_table.md and the run files aa_1.json .. aa_3.json.
# Usage (from the repository root): OUT=/some/dir [STEPS="sweeps tests"] bash scripts/checks/aa_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
STEPS=${STEPS:-"sweeps tests"}
export GEMMBENCH_CACHE_DIR=${GEMMBENCH_CACHE_DIR:-/tmp/gemmbench-aa-cache}

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  if [[ $STEPS == *sweeps* ]]; then
    rm -rf "$GEMMBENCH_CACHE_DIR"
    t0=$(ms); gb ext build > /dev/null; echo "extension build wall time: $(( $(ms) - t0 )) ms"
    for run in 1 2 3; do
      t0=$(ms)
      gb sweep --out-dir "/tmp/gemmbench-aa/$run" --quiet > /dev/null; rc=$?
      echo "sweep $run wall time: $(( $(ms) - t0 )) ms (exit $rc)"
      cp "$(ls -t /tmp/gemmbench-aa/$run/*.json | head -1)" "$OUT/aa_$run.json"
    done
    python3 scripts/checks/aa_table.py "$OUT"/aa_1.json "$OUT"/aa_2.json "$OUT"/aa_3.json | tee "$OUT/aa_table.md"
  fi
  if [[ $STEPS == *tests* ]]; then
    echo "== test suite"
    t0=$(ms)
    python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tail -8
    echo "test suite wall time: $(( $(ms) - t0 )) ms"
  fi
} 2>&1 | tee -a "$OUT/aa_check.log"

echo "== summary"
grep -E "passed|failed|wall time|Error" "$OUT/aa_check.log" | head -20
cat "$OUT/aa_table.md" 2>/dev/null
