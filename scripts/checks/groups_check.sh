#!/usr/bin/env bash
# DeepSeek-V4's attention input group on the GPU machine, in one call (docs/groups.md): the group GPU
# test, then gemmbench group on the V4-Pro and V4-Flash presets from M = 1 to 16384 with each light
# fp32-output light backend (cublas_ext runs mm_out_dtype's kernel, docs/cublas_ext.md, so it is left out),
# recommend and plot on the run. Full log under $OUT, summary last.
# Usage (from the repository root): OUT=/some/dir bash scripts/checks/groups_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"

{
  python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k group 2>&1 | tail -2
  t0=$(ms)
  gb group --preset deepseek-v4-pro --preset deepseek-v4-flash --m 1:16384:x2 \
    --backend mm_out_dtype,router_small_m --out-dir "$OUT/groups" --md > "$OUT/groups.md"
  echo "group wall time: $(( $(ms) - t0 )) ms"
  cat "$OUT/groups.md"
  gb recommend "$OUT"/groups/*.json
  gb plot "$OUT"/groups/*.json -o "$OUT/groups.png"
} 2>&1 | tee "$OUT/groups.log"

echo "== summary"
grep -E "passed|failed|wall time|streams pay|do not pay" "$OUT/groups.log"
