#!/usr/bin/env bash
# Where gemmbench's layer times and scripts/checks/layer_check.py's part (docs/context.md), on the GPU machine,
# in one call: research/experiments/layer_gap.py (who built the layers, who timed them, in one process), then
# sweeps of DeepSeek-V3's router at M = 1 with fewer and more units per point,
# each checked by layer_check.py in its own process. Full log under $OUT, summary last.
# Usage (from the repository root): OUT=/some/dir bash research/checks/layer_gap.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"
export GEMMBENCH_CACHE_DIR=${GEMMBENCH_CACHE_DIR:-/tmp/gemmbench-cache}
WORK=${WORK:-/tmp/gemmbench-gap}
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv
  gb ext build >/dev/null 2>&1 || gb ext build
  echo "== layer_gap.py"
  python3 research/experiments/layer_gap.py "$OUT"
  for spec in "one:mm_out_dtype:norm" \
    "table:mm_out_dtype,router_small_m_ext,router_small_m_mma:norm,gemmbench_norm_pdl_start,gemmbench_norm_pdl_after_stores"; do
    IFS=: read -r name backends contexts <<<"$spec"
    echo "== sweep $name: $backends after $contexts"
    rm -rf "$WORK/$name"
    gb sweep --preset deepseek-v3 --role router --m 1 --backend "$backends" --context "$contexts" \
      --out-dir "$WORK/$name" --quiet --md >/dev/null
    python3 scripts/checks/layer_check.py "$(ls "$WORK/$name"/*.json)" "$WORK/$name" | tail -25
  done
} 2>&1 | tee "$OUT/layer_gap.log"
echo "== summary"
grep -E "passed|failed|within 5%|^\| (norm|gemmbench|DeepSeek)" "$OUT/layer_gap.log" | head -60
