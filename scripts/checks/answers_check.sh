#!/usr/bin/env bash
# GPU check for docs/answers.md: roofline, routing accuracy, recommendations, on the DeepSeek-V3,
# V4-Pro and V4-Flash presets, in one call. Full log under $OUT; compare/plot/recommend then run anywhere.
# Usage (from the repository root): OUT=/some/dir bash scripts/checks/answers_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"

{
  gb ext build > /dev/null
  python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -3
  t0=$(ms)
  gb sweep --preset deepseek-v3 --out-dir "$OUT/v3" --quiet > "$OUT/v3.txt"
  echo "v3 sweep wall time: $(( $(ms) - t0 )) ms"
  t0=$(ms)
  gb sweep --preset deepseek-v4-pro --m 1,4,16,64,256,1024,4096 \
    --backend mm_out_dtype,upcast,linear_cast,cublas_ext,cublaslt_tuned_ext --out-dir "$OUT/v4" --quiet > "$OUT/v4.txt"
  echo "v4-pro sweep wall time: $(( $(ms) - t0 )) ms"
  t0=$(ms)
  gb sweep --preset deepseek-v4-flash --out-dir "$OUT/v4_flash" --quiet > "$OUT/v4_flash.txt"
  echo "v4-flash sweep wall time: $(( $(ms) - t0 )) ms"
  gb recommend "$OUT"/v3/*.json
  gb recommend "$OUT"/v4/*.json
  gb recommend "$OUT"/v4_flash/*.json
} 2>&1 | tee "$OUT/answers.log"
