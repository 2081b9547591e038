#!/usr/bin/env bash
# The router's tiers on the GPU machine, in one call (docs/tiers.md): the extension built afresh; both
# small-M kernels' GPU tests; the five router shapes at M = 1..32 with router_small_m (Triton),
# router_small_m_ext (CUDA), mm_out_dtype and linear_cast (cold L2, graph time); every preset with both
# small-M kernels against mm_out_dtype (relative error and routing); ncu; recommend --python.
# Full log and runs in $OUT/tiers.tgz, summary last. The tuning space has its own script
# (research/experiments/router_small_m_tuning.py).
# Usage (from the repository root): OUT=/some/dir bash scripts/checks/tiers_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
NCU_SNIPPET='
import torch
from gemmbench.backends import REGISTRY
from gemmbench.timing.inputs import make_inputs
from gemmbench.spec import Case
from gemmbench.backends import ext
ext.load()
for name in ("router_small_m", "router_small_m_ext", "mm_out_dtype"):
    for m in (1, 16):
        case = Case("DeepSeek-V3", "router", "router", m, 256, 7168)
        REGISTRY[name].prepare(case, make_inputs(case, torch.device("cuda"), seed=0))()
torch.cuda.synchronize()
'

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv
  python3 -c "import triton; print('triton', triton.__version__)"
  gb ext clean > /dev/null
  t0=$(ms)
  gb ext build > /dev/null
  echo "ext build wall time: $(( $(ms) - t0 )) ms"
  gb ext status
  python3 -m pytest -q -p no:cacheprovider tests/test_ext_gpu.py tests/test_router_small_m.py 2>&1 | tail -15
  python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k router_small_m 2>&1 | tail -5
  t0=$(ms)
  gb sweep --shape 256x7168 --shape 384x7168 --shape 256x6144 --shape 256x4096 --shape 64x7168 --m 1:32:x2 \
    --backend router_small_m,router_small_m_ext,mm_out_dtype,linear_cast --out-dir "$OUT/tiers" --md > "$OUT/tiers.md"
  echo "tiers sweep wall time: $(( $(ms) - t0 )) ms"
  cat "$OUT/tiers.md"
  gb sweep --preset deepseek-v3 --preset kimi-k2 --preset glm-5 --preset deepseek-v4-flash --preset deepseek-v4-pro \
    --preset deepseek-v3.2 --preset qwen3-30b-a3b --preset qwen3-235b-a22b --m 1,8,16,32 \
    --backend router_small_m,router_small_m_ext,mm_out_dtype --no-kernels --out-dir "$OUT/presets" --md > "$OUT/presets.md"
  grep -c "router_small_m" "$OUT/presets.md"
  # ncu on the tuned kernel (configurations from the cache the sweep wrote) and on mm_out_dtype's kernels,
  # V3 router at M = 1 and 16; ncu flushes the caches before each kernel (cold L2).
  ncu -k regex:'router_small_m|nvjet|splitK|reduce' --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section MemoryWorkloadAnalysis --section LaunchStats \
    python3 -c "$NCU_SNIPPET" > "$OUT/ncu_router.txt" 2>&1
  grep -E "^  [a-z_]+.*\(|DRAM Throughput|Achieved Occupancy|Duration|Memory Throughput|Registers Per|Stall" \
    "$OUT/ncu_router.txt" | head -80
  gb recommend "$OUT"/tiers/*.json --md
  gb recommend "$OUT"/tiers/*.json --python > "$OUT/dispatch.py" && python3 -c "compile(open('$OUT/dispatch.py').read(), 'dispatch.py', 'exec'); print('dispatch.py compiles')"
} 2>&1 | tee "$OUT/tiers.log"

echo "== summary"
grep -E "passed|failed|wall time|compiles|router_kernel_problem|\| M <=|\| M >|all M" "$OUT/tiers.log"
# The device machine returns a handful of files: one archive of everything.
(cd "$OUT" && tar czf tiers.tgz tiers presets tiers.md presets.md ncu_router.txt dispatch.py tiers.log &&
  rm -rf tiers presets tiers.md presets.md ncu_router.txt dispatch.py tiers.log)
