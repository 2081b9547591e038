#!/usr/bin/env bash
# The general GPU check in one call (tests, sweep, kernels, extension) on the GPU machine; full log under $OUT, summary last.
# Usage (from the repository root): OUT=/some/dir bash scripts/checks/gpu_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  gb env --json

  echo "== cuBLAS extension: build from a fresh cache, then load from the cache"
  gb ext clean
  t0=$(ms)
  gb ext build
  echo "ext build wall time: $(( $(ms) - t0 )) ms"
  python3 -c "import time, torch; from gemmbench.backends import ext; t = time.perf_counter(); ext.load(); print(f'ext load from cache: {(time.perf_counter() - t) * 1e3:.0f} ms')"
  gb ext status

  echo "== the whole test suite (GPU tests included)"
  python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tail -25

  echo "== the Python API on the GPU"
  python3 -c "
import gemmbench
run = gemmbench.sweep(presets=['deepseek-v3'], m=[1, 16], backends=['mm_out_dtype', 'cublas_ext'], out_dir='$OUT/api')
print(run.to_frame()[['m', 'backend', 'status', 'device_median_us', 'rel_err', 'kernel_count']].to_string())
"

  echo "== sweep, DeepSeek-V3 preset, all real backends"
  t0=$(ms)
  gb sweep --preset deepseek-v3 --out-dir "$OUT/runs" --csv "$OUT/sweep.csv"
  echo "sweep wall time: $(( $(ms) - t0 )) ms"

  echo "== extension backends beside mm_out_dtype: DeepSeek-V3 router and V4-Pro shapes"
  gb sweep --preset deepseek-v3 --preset deepseek-v4-pro --m 1,16,128,1024,4096 \
    --backend mm_out_dtype,cublas_ext,cublaslt_ext,cublaslt_tuned_ext --out-dir "$OUT/ext" --quiet
  python3 scripts/checks/ext_check.py | tee "$OUT/ext_identity.md"

  echo "== kernels"
  t0=$(ms)
  gb kernels --preset deepseek-v3 --m 1,16,4096
  echo "kernels wall time: $(( $(ms) - t0 )) ms"
  gb kernels --preset deepseek-v3 --m 1,16,4096 --md > "$OUT/kernels.md"

  echo "== fixture for tests/fixtures (sm90 kernel names)"
  gb sweep --preset deepseek-v3 --m 1,16,4096 --out-dir "$OUT/fixture" --budget-ms 20 --quiet > /dev/null
} 2>&1 | tee "$OUT/gpu_check.log"

echo "== summary"
grep -E "passed|failed|wall time|ext load" "$OUT/gpu_check.log"
