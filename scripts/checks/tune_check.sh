#!/usr/bin/env bash
# A tuning file to ship for this GPU, and where a default sweep's time goes once it is there, in one call on
# the GPU machine: the extension built, `gemmbench tune` over every preset (the file is named after the
# GPU, as gemmbench/backends/tunings/ keeps them), then a default sweep under cProfile that finds every
# tuning in the cache (the 45 functions with the most cumulative time, and its wall time). Under $OUT:
# the tuning file, tune_check.log, sweep.prof and sweep_pstats.txt.
# Usage (from the repository root): OUT=/some/dir bash scripts/checks/tune_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
export GEMMBENCH_CACHE_DIR=${GEMMBENCH_CACHE_DIR:-/tmp/gemmbench-tune-cache}
PRESETS=$(python3 -c "from gemmbench.spec.presets import preset_names; print(' '.join(preset_names()))")
GPU=$(python3 -c "import torch; print(torch.cuda.get_device_name())")
FILE="$OUT/router_small_m_$(echo "$GPU" | tr -c '[:alnum:]\n' '-' | tr '[:upper:]' '[:lower:]').json"
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  t0=$(ms); gb ext build > /dev/null; echo "extension build wall time: $(( $(ms) - t0 )) ms"
  presets=(); for p in $PRESETS; do presets+=(-p "$p"); done
  t0=$(ms)
  timeout "${TUNE_LIMIT_S:-300}" python3 -m gemmbench tune "${presets[@]}" --out "$FILE"; rc=$?
  echo "tune (every preset) wall time: $(( $(ms) - t0 )) ms, exit $rc, into $(basename "$FILE")"
  t0=$(ms)
  python3 -m cProfile -o "$OUT/sweep.prof" -m gemmbench sweep --out-dir /tmp/gemmbench-tune-sweep --quiet > /dev/null
  echo "default sweep (tunings cached; under cProfile) wall time: $(( $(ms) - t0 )) ms, exit $?"
  python3 -c "import pstats, sys; pstats.Stats(sys.argv[1]).sort_stats('cumulative').print_stats(45)" \
    "$OUT/sweep.prof" > "$OUT/sweep_pstats.txt"
} 2>&1 | tee "$OUT/tune_check.log"
echo "== summary"
grep -E "wall time|Error" "$OUT/tune_check.log"
