#!/usr/bin/env bash
# The layer check, the stopping rule and the engine's steps, on the GPU machine, in one call, in the order
# STEPS names them (most wanted first by default): the layer sweep and its independent check
# (scripts/checks/layer_check.sh at M = 1, 2, 4, 8, 16; FlashInfer from the carry .engines/ where present),
# the A/A check (scripts/checks/aa_check.sh: three default sweeps, the first from an empty cache, timed;
# compare of every pair), a fourth default sweep timed per phase (sweep_phases.py), then
# research/experiments/engine_steps.py (which step of the engine moves the independent check's layers);
# on request (STEPS containing phases_first), a first sweep by phase from empty gemmbench and Triton caches,
# and (suite) the whole test suite.
# The device machine returns at most eight files, and a call cut short by its limit returns what $OUT holds
# then: so every step works under $WORK, and after each step its files are packed again into
# $OUT/results.tgz and its summary appended to $OUT/summary.log.
# Usage (from the repository root): OUT=/some/dir [STEPS="layer aa phases steps"] bash research/checks/engine_and_stopping.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"
STEPS=${STEPS:-"layer aa phases steps"}
WORK=${WORK:-/tmp/gemmbench-checks}
mkdir -p "$WORK"

pack() {  # $1: the step just done; its summary lines follow on stdin
  {
    echo "== $1 ($(date -u +%H:%M:%S))"
    cat
  } >> "$OUT/summary.log"
  tar czf "$OUT/results.tgz.part" -C "$WORK" . && mv "$OUT/results.tgz.part" "$OUT/results.tgz"
}

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | pack "card"
step_steps() {
  GEMMBENCH_CACHE_DIR=/tmp/gemmbench-steps-cache gb ext build > "$WORK/steps.log" 2>&1
  local t0=$(ms)
  GEMMBENCH_CACHE_DIR=/tmp/gemmbench-steps-cache python3 research/experiments/engine_steps.py "$WORK" \
    >> "$WORK/steps.log" 2>&1
  { cat "$WORK/engine_steps.md"; echo "engine_steps: $(( $(ms) - t0 )) ms"; } | pack "engine steps"
}
step_layer() {
  # builds the extension once for engine_steps too (about 40 s saved); the A/A check builds afresh
  GEMMBENCH_CACHE_DIR=/tmp/gemmbench-steps-cache OUT=$WORK M=1,2,4,8,16 STEPS="sweep check" \
    bash scripts/checks/layer_check.sh > "$WORK/layer.log" 2>&1
  {
    grep -E "wall time|layer_check exit|Error" "$WORK/layer.log" | tail -10
    python3 scripts/checks/layer_check_table.py "$WORK/layer_check.json" 2>&1
  } | pack "layer check"
}
step_aa() {
  OUT=$WORK STEPS=sweeps bash scripts/checks/aa_check.sh > "$WORK/aa.log" 2>&1
  { grep -E "wall time" "$WORK/aa_check.log"; cat "$WORK/aa_table.md"; } | pack "A/A"
}
phases_sweep() {  # $1: its name; $2: the gemmbench cache (the extension is built there first if it is not)
  local name=$1 cache=$2 t0
  GEMMBENCH_CACHE_DIR=$cache gb ext build > "$WORK/$name.log" 2>&1
  t0=$(ms)
  GEMMBENCH_CACHE_DIR=$cache python3 research/checks/sweep_phases.py "$WORK/$name.md" \
    sweep --quiet --out-dir "/tmp/gemmbench-$name" >> "$WORK/$name.log" 2>&1
  { cat "$WORK/$name.md"; echo "$name: $(( $(ms) - t0 )) ms"; } | pack "$name"
}
step_phases() { phases_sweep phases /tmp/gemmbench-aa-cache; }  # after the A/A's sweeps, a rerun
step_phases_first() {  # a first sweep: gemmbench's and Triton's caches empty
  rm -rf /tmp/gemmbench-first-cache /tmp/gemmbench-first-triton
  TRITON_CACHE_DIR=/tmp/gemmbench-first-triton phases_sweep phases_first /tmp/gemmbench-first-cache
}
step_suite() {  # the whole test suite, as CI runs it, on the GPU
  local t0=$(ms)
  PYTHONPYCACHEPREFIX=/tmp/pyc python3 -m pytest -q -p no:cacheprovider tests > "$WORK/suite.log" 2>&1
  { tail -3 "$WORK/suite.log"; echo "suite: $(( $(ms) - t0 )) ms"; } | pack "suite"
}
for step in $STEPS; do
  "step_$step"
done
cat "$OUT/summary.log"
