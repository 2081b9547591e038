#!/usr/bin/env bash
# The layer as the engines run it (docs/context.md), on the GPU machine, in one call: FlashInfer from the
# carry (`bash scripts/checks/engine_carry.sh` builds .engines/ here; pass carry [".engines"]), the whole
# test suite, one sweep of DeepSeek-V3's and Kimi-K2's routers at M = 1..16 after every context of the
# table (FlashInfer's fused add + norm with PDL and without, torch's norm, gemmbench's norm at both trigger
# positions) with FlashInfer's router GEMM, mm_out_dtype and gemmbench's CUDA first tier, the independent
# check of every layer time of that run (layer_check.py), the kernels of each chain (layer_kernels.py),
# and the dispatch `recommend --python` writes from it; first, research/experiments/layer_placement_ab.py (where the
# layers' buffers land, and sampling in rounds: what the check's disagreement comes from). Full log under
# $OUT, summary last.
# Usage (from the repository root): OUT=/some/dir [STEPS="placement sweep check kernels tests"] [M=1:16] \
#   bash scripts/checks/layer_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
# One extension build for every step below, outside $OUT (only a few files come back from there).
export GEMMBENCH_CACHE_DIR=${GEMMBENCH_CACHE_DIR:-/tmp/gemmbench-cache}
STEPS=${STEPS:-"placement sweep check kernels tests"}
M=${M:-1:16}
WORK=${WORK:-/tmp/gemmbench-layer}
CONTEXTS="flashinfer_fused_add_rmsnorm_pdl,flashinfer_fused_add_rmsnorm,norm,gemmbench_norm_pdl_start,gemmbench_norm_pdl_after_stores"
BACKENDS="flashinfer_router_gemm,mm_out_dtype,router_small_m_ext,router_small_m_mma"

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  if [[ -f .engines/env.sh ]]; then
    source .engines/env.sh
    python3 -c "import flashinfer; print('FlashInfer', flashinfer.__version__, 'from', flashinfer.__file__)"
  else
    echo "== no .engines/: FlashInfer's rows are skipped (bash scripts/checks/engine_carry.sh makes it)"
  fi
  gb ext build >/dev/null 2>&1 || gb ext build
  if [[ $STEPS == *placement* ]]; then
    echo "== where the layers' buffers land, and sampling in rounds (research/experiments/layer_placement_ab.py)"
    python3 research/experiments/layer_placement_ab.py "$OUT"
  fi
  if [[ $STEPS == *sweep* ]]; then
    echo "== sweep in the layer"
    t0=$(ms)
    gb sweep --preset deepseek-v3 --preset kimi-k2 --m "$M" --backend "$BACKENDS" --context "$CONTEXTS" \
      --out-dir "$WORK" --quiet --md
    echo "sweep wall time: $(( $(ms) - t0 )) ms"
    cp "$(ls -t "$WORK"/*.json | head -1)" "$OUT/layer_run.json"
    gb recommend "$OUT/layer_run.json" --md
    gb recommend "$OUT/layer_run.json" --python
    gb kernels --from "$OUT/layer_run.json" --md 2>&1 | head -40
  fi
  if [[ $STEPS == *check* ]]; then
    echo "== independent check"
    python3 scripts/checks/layer_check.py "$OUT/layer_run.json" "$OUT"
    echo "layer_check exit: $?"
  fi
  if [[ $STEPS == *kernels* ]]; then
    echo "== kernels of each chain"
    python3 scripts/checks/layer_kernels.py "$OUT"
  fi
  if [[ $STEPS == *tests* ]]; then
    echo "== test suite"
    t0=$(ms)
    python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tail -8
    echo "test suite wall time: $(( $(ms) - t0 )) ms"
  fi
} 2>&1 | tee "$OUT/layer_check.log"

echo "== summary"
grep -E "passed|failed|wall time|within 5%|layer_check exit|Error|probe" "$OUT/layer_check.log" | head -30
