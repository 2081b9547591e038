#!/usr/bin/env bash
# Run-to-run repeatability on the GPU machine, in one call: the default DeepSeek-V3 sweep twice, then
# once without the kernel pass, each with its wall time; both timers' spread between the runs; a
# router GEMM at M = 3,000,000 (inputs of 43 GB); the whole test suite. Full log under $OUT.
# Usage (from the repository root): OUT=/some/dir bash research/checks/repeatability_check.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  gb ext build > /dev/null
  for run in a b; do
    t0=$(ms)
    gb sweep --preset deepseek-v3 --out-dir "$OUT/$run" --quiet > "$OUT/$run.txt"
    echo "sweep $run wall time: $(( $(ms) - t0 )) ms"
  done
  t0=$(ms)
  gb sweep --preset deepseek-v3 --no-kernels --out-dir "$OUT/no_kernels" --quiet > "$OUT/no_kernels.txt"
  echo "sweep without the kernel pass wall time: $(( $(ms) - t0 )) ms"
  echo "== two default sweeps, A against B"
  python3 research/checks/repeatability.py "$OUT"/a/*.json "$OUT"/b/*.json
  echo "== with the kernel pass (B) against without (no_kernels)"
  python3 research/checks/repeatability.py "$OUT"/b/*.json "$OUT"/no_kernels/*.json
  echo "== DeepSeek-V3 router at M = 3,000,000"
  t0=$(ms)
  gb sweep --shape 3000000x256x7168 --backend mm_out_dtype,linear_cast --no-kernels --no-save --md
  echo "M = 3,000,000 sweep wall time: $(( $(ms) - t0 )) ms"
  echo "== the whole test suite"
  python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tail -5
} 2>&1 | tee "$OUT/repeatability.log"

echo "== summary"
grep -E "wall time|\|B/A - 1\||passed|failed" "$OUT/repeatability.log"
