#!/usr/bin/env bash
# How long a new user waits (docs/validation.md), on the GPU machine in one call: the extension build and
# a first default sweep from an empty cache (shipped tuning files only), the same sweep again, the kernel
# pass of three points, and the two sweeps' repeatability; given BASELINE (a folder holding an earlier
# gemmbench package), two back-to-back default sweeps of it too, after, so that both pairs are compared on
# one machine start. STEPS may add "host" (does eager latency follow the CPU? research/experiments/
# host_states.py) and "tests" (the whole suite, its slowest tests); a tuning file to ship comes from
# scripts/checks/tune_check.sh. The log, summary and a tarball of the run files stay under $OUT (few files:
# the device returns only a handful).
# Usage (from the repository root): OUT=/some/dir [BASELINE=dir] [STEPS="sweeps kernels tests"] bash research/checks/speed_check.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"
STEPS=${STEPS:-"sweeps kernels"}
WORK=$(mktemp -d)  # run files and caches; tarred into $OUT at the end
export GEMMBENCH_CACHE_DIR="$WORK/cache"  # empty at the start: what a new user's machine has

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  python3 -c "import sys, torch, os; p = os.path.dirname(torch.__file__); print('dont_write_bytecode', sys.dont_write_bytecode, 'torch dir writable', os.access(p, os.W_OK))"
  t0=$(ms)
  gb ext build > /dev/null
  echo "ext build (empty cache) wall time: $(( $(ms) - t0 )) ms"
  if [[ $STEPS == *host* ]]; then
    echo "== host states (research/experiments/host_states.py)"
    python3 research/experiments/host_states.py
  fi
  if [[ $STEPS == *sweeps* ]]; then
    for run in first again; do
      t0=$(ms)
      gb sweep --preset deepseek-v3 --out-dir "$WORK/$run" --quiet > "$WORK/$run.txt"
      echo "sweep $run wall time: $(( $(ms) - t0 )) ms"
    done
    echo "== after: the two sweeps, first against again"
    python3 research/checks/repeatability.py "$WORK"/first/*.json "$WORK"/again/*.json
    if [[ -n ${BASELINE:-} ]]; then
      for run in before_a before_b; do
        t0=$(ms)
        (cd "$BASELINE" && PYTHONPATH=$BASELINE python3 -m gemmbench sweep --preset deepseek-v3 --out-dir "$WORK/$run" --quiet) > "$WORK/$run.txt"
        echo "baseline sweep $run wall time: $(( $(ms) - t0 )) ms"
      done
      echo "== before: two sweeps of the baseline"
      python3 research/checks/repeatability.py "$WORK"/before_a/*.json "$WORK"/before_b/*.json
    fi
  fi
  if [[ $STEPS == *kernels* ]]; then
    t0=$(ms)
    gb kernels --preset deepseek-v3 --m 1,16,4096 > "$WORK/kernels.txt"
    echo "kernels (3 points) wall time: $(( $(ms) - t0 )) ms"
    t0=$(ms)
    python3 -X importtime -m gemmbench kernels --preset deepseek-v3 --m 1 > /dev/null 2> "$WORK/importtime.txt"
    echo "kernels (1 point, -X importtime) wall time: $(( $(ms) - t0 )) ms"
    sort -t'|' -k2 -n "$WORK/importtime.txt" | tail -25
  fi
  if [[ $STEPS == *tests* ]]; then
    t0=$(ms)
    python3 -m pytest -q -p no:cacheprovider --durations=25 tests 2>&1 | tail -40
    echo "pytest wall time: $(( $(ms) - t0 )) ms"
  fi
} 2>&1 | tee "$OUT/speed_check.log"

rm -rf "$WORK/cache"
tar -czf "$OUT/speed_check_runs.tar.gz" -C "$WORK" .
echo "== summary"
grep -E "wall time|\|B/A - 1\||flagged noisy|passed|failed|^==|window medians|by CPU|CPUs" "$OUT/speed_check.log"
