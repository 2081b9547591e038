#!/usr/bin/env bash
# The GEMM in its layer (docs/context.md) on the GPU machine: the GPU tests, the independent check of the
# in-context figures (context_check.py), then the five router GEMMs at M = 1..16 with mm_out_dtype,
# router_small_m and router_small_m_ext (PDL off and on), alone and after each producer, one run per
# context, and a table of them all; then DeepSeek-V4-Pro's attention group at M = 1, 16, 128 in each
# context. Full log under $OUT, summary last.
# Usage (from the repository root): OUT=/some/dir [STEPS="tests check sweeps groups"] \
#   [CONTEXTS="none copy norm norm_pdl"] [TESTS="pytest -k expression"] bash scripts/checks/context_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
export GEMMBENCH_CACHE_DIR="$OUT/cache"  # one extension build and one tuning for every step below
STEPS=${STEPS:-"tests check sweeps groups"}
TESTS=${TESTS:-""}
CONTEXTS=${CONTEXTS:-"none copy norm norm_pdl"}
ROUTERS="256x7168 384x7168 256x6144 256x4096 64x7168"  # DeepSeek-V3, Kimi-K2/V4-Pro, GLM-5, V4-Flash, V4 indexer

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  if [[ $STEPS == *tests* ]]; then
    echo "== GPU tests"
    python3 -m pytest -q -p no:cacheprovider -m gpu tests ${TESTS:+-k "$TESTS"} 2>&1 | tail -8
  fi
  if [[ $STEPS == *check* ]]; then
    echo "== independent check"
    python3 scripts/checks/context_check.py "$OUT"
  fi
  if [[ $STEPS == *sweeps* ]]; then
    for context in $CONTEXTS; do
      echo "== sweep --context $context"
      t0=$(ms)
      shapes=(); for s in $ROUTERS; do shapes+=(--shape "$s"); done
      gb sweep "${shapes[@]}" --m 1:16:x2 --backend mm_out_dtype,router_small_m,router_small_m_ext \
        --context "$context" --no-kernels --out-dir "$OUT/context_$context" --quiet --md
      echo "sweep --context $context wall time: $(( $(ms) - t0 )) ms"
      gb recommend "$OUT/context_$context"/*.json --md
    done
    python3 - "$OUT" $CONTEXTS <<'PY'
import sys
from pathlib import Path
from gemmbench.records.runfile import load_run
out, contexts = Path(sys.argv[1]), sys.argv[2:]
table = {}
for context in contexts:
    (path,) = sorted((out / f"context_{context}").glob("*.json"))
    for r in load_run(path).records:
        if r.status == "ok":
            value = r.device.median_us if context == "none" else r.context_device.median_us
            table.setdefault((r.n, r.k, r.m, r.label), {})[context] = value
print("| N x K | M | backend | " + " | ".join(f"{'alone' if c == 'none' else 'after ' + c}" for c in contexts) + " |")
print("|---|---|---|" + "---|" * len(contexts))
for (n, k, m, label), values in table.items():
    cells = " | ".join(f"{values[c]:.2f}" if c in values else "–" for c in contexts)
    print(f"| {n}x{k} | {m} | {label} | {cells} |")
PY
  fi
  if [[ $STEPS == *groups* ]]; then
    for context in $CONTEXTS; do
      echo "== group --context $context"
      t0=$(ms)
      gb group -p deepseek-v4-pro --m 1,16,128 -b mm_out_dtype,router_small_m,router_small_m_ext \
        --context "$context" --no-kernels --out-dir "$OUT/group_$context" --quiet --md
      echo "group --context $context wall time: $(( $(ms) - t0 )) ms"
      gb recommend "$OUT/group_$context"/*.json --md
    done
  fi
} 2>&1 | tee "$OUT/context_check.log"

echo "== summary"
grep -E "passed|failed|wall time|context check|Error" "$OUT/context_check.log"
