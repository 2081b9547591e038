#!/usr/bin/env bash
# The first-tier CUDA kernels on the GPU, in one call: the extension built (the compiler's output on
# failure), the extension's GPU tests (both kernels: exact, the same bits, graphs, PDL after a producer),
# ncu on both kernels (DeepSeek-V3's router at M = 1 and 16, ncu's clocks and flushed caches), every
# configuration of the tensor-core kernel timed (research/experiments/router_mma_variants.py; SKIP_VARIANTS=1
# leaves it out), and its stages left out in turn (research/experiments/router_mma_stages.py).
# Logs in $OUT. Usage (from the repository root):
#   OUT=/some/dir [SKIP_VARIANTS=1] bash research/checks/router_mma_check.sh [variants args]
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"
WORK=$(mktemp -d)
export GEMMBENCH_CACHE_DIR="$WORK/cache"
t0=$(ms)
python3 -c "from gemmbench.backends import ext; print(ext.ensure_loaded() or 'extension loaded')" 2>&1 | tee "$OUT/build.log"
echo "build: $(( $(ms) - t0 )) ms" | tee -a "$OUT/build.log"
cat "$WORK"/cache/ext/*/*.log >> "$OUT/build.log" 2>/dev/null
t0=$(ms)
python3 -m pytest -q -p no:cacheprovider tests/test_ext_gpu.py > "$OUT/test_ext_gpu.log" 2>&1
echo "tests/test_ext_gpu.py: $(tail -1 "$OUT/test_ext_gpu.log") ($(( $(ms) - t0 )) ms)"
grep -E "^(FAILED|ERROR)" "$OUT/test_ext_gpu.log"
NCU_SNIPPET='
import torch
from gemmbench.backends import ext
ext.ensure_loaded()
w = torch.randn(256, 7168, device="cuda", dtype=torch.bfloat16)
for m in (1, 16):
    x = torch.randn(m, 7168, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(m, 256, device="cuda")
    torch.ops.gemmbench.router_small_m_out(x, w, out)
    torch.ops.gemmbench.router_small_m_mma_out(x, w, out)
torch.cuda.synchronize()
'
ncu -k regex:gemmbench_router --section SpeedOfLight --section Occupancy --section WarpStateStats \
  --section MemoryWorkloadAnalysis --section LaunchStats python3 -c "$NCU_SNIPPET" > "$OUT/ncu_first_tier.txt" 2>&1
grep -E "^  [a-z_]+.*\(|DRAM Throughput|Achieved Occupancy|Duration|Registers Per|Grid Size|Block Size|Cluster Size|cycles being stalled" \
  "$OUT/ncu_first_tier.txt" | cut -c1-230
if [[ ${SKIP_VARIANTS:-0} != 1 ]]; then
  python3 research/experiments/router_mma_variants.py "$OUT" "$@" > "$OUT/variants.log" 2>&1
  tail -170 "$OUT/variants.log"
fi
python3 research/experiments/router_mma_stages.py "$OUT" > "$OUT/stages.log" 2>&1
tail -20 "$OUT/stages.log"
