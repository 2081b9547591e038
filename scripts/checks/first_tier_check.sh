#!/usr/bin/env bash
# The first tier against the public kernel's figures (docs/tiers.md), in one call: the five router GEMMs
# at every M = 1..16 with every first-tier kernel, each with and without PDL, and mm_out_dtype beside
# them (cold L2, CUDA-graph device time); recommend's dispatch; the CUDA kernels on every GEMM of every
# preset at M = 1..16 (their largest relative error and routing mismatches); the CUDA kernels after
# gemmbench's PDL norm (--context norm_pdl); then the whole test suite. Each sweep's run is copied into
# $OUT as soon as it is saved (a call that runs out of time keeps what it measured); logs there too.
# Usage (from the repository root): OUT=/some/dir [SKIP_CONTEXT=1] bash scripts/checks/first_tier_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
WORK=$(mktemp -d)
export GEMMBENCH_CACHE_DIR="$WORK/cache"
ROUTERS="--shape 256x7168 --shape 384x7168 --shape 256x6144 --shape 256x4096 --shape 64x7168"
{
  t0=$(ms)
  gb ext build
  echo "ext build: $(( $(ms) - t0 )) ms"
  t0=$(ms)
  gb sweep $ROUTERS --m 1:16:+1 --backend router_small_m_ext,router_small_m_mma,router_small_m,mm_out_dtype \
    --out-dir "$WORK/first_tier" --quiet > /dev/null
  echo "first-tier sweep: $(( $(ms) - t0 )) ms"
  cp "$WORK"/first_tier/*.json "$OUT/first_tier.json"
  gb recommend "$WORK"/first_tier/*.json --md
  t0=$(ms)
  gb sweep --preset deepseek-v3 --preset deepseek-v3.2 --preset kimi-k2 --preset glm-5 --preset deepseek-v4-flash \
    --preset deepseek-v4-pro --preset qwen3-30b-a3b --preset qwen3-235b-a22b --m 1:16:+1 \
    --backend router_small_m_ext,router_small_m_mma --no-kernels --out-dir "$WORK/presets" --quiet > /dev/null
  echo "presets sweep: $(( $(ms) - t0 )) ms"
  cp "$WORK"/presets/*.json "$OUT/presets.json"
  if [[ ${SKIP_CONTEXT:-0} != 1 ]]; then
    t0=$(ms)
    gb sweep --shape 256x7168 --m 1,2,4,8,16 --context norm_pdl --backend router_small_m_ext,router_small_m_mma,mm_out_dtype \
      --out-dir "$WORK/context" --quiet > /dev/null
    echo "context sweep: $(( $(ms) - t0 )) ms"
    cp "$WORK"/context/*.json "$OUT/context.json"
  fi
} 2>&1 | tee "$OUT/first_tier.log"
python3 - "$WORK" <<'PY' | tee -a "$OUT/first_tier.log"
import sys
from pathlib import Path

import gemmbench

work = Path(sys.argv[1])

def labelled(name):
    frame = gemmbench.load_run(next((work / name).glob("*.json"))).to_frame()
    frame["label"] = frame["backend"] + frame["pdl"].map({True: "+pdl"}).fillna("")
    return frame


presets = labelled("presets")
print("== presets: the largest rel_err and routing mismatch, and the statuses, per kernel")
print(presets.groupby("label").agg(rows=("m", "size"), rel_err=("rel_err", "max"),
                                   topk_mismatch=("topk_mismatch", "max"), status=("status", "unique")).to_string())
for name in ("first_tier", "context"):
    if not any((work / name).glob("*.json")):
        continue
    frame = labelled(name)
    column = "context_device_median_us" if name == "context" else "device_median_us"
    table = frame.pivot_table(index=["n", "k", "m"], columns="label", values=column).round(2)
    print(f"== {name}: {column}")
    print(table.to_string())
PY
{
  t0=$(ms)
  python3 -m pytest -q -p no:cacheprovider --durations=25 > "$OUT/pytest.log" 2>&1
  echo "pytest: $(tail -1 "$OUT/pytest.log") ($(( $(ms) - t0 )) ms)"
  grep -E "^(FAILED|ERROR)" "$OUT/pytest.log"
} 2>&1 | tee -a "$OUT/first_tier.log"
