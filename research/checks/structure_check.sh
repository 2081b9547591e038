#!/usr/bin/env bash
# The checks a change of the package's structure needs on the GPU machine, in one call: the whole test
# suite (GPU tests included), a group run of DeepSeek-V4-Pro's attention input group timed through the
# sweep's measurement path (its clock and throttle columns) compared with docs/runs/h200_groups_v4.json,
# a short sweep and the kernel pass. Full log under $OUT, summary last.
# Usage (from the repository root): OUT=/some/dir bash research/checks/structure_check.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"
export GEMMBENCH_CACHE_DIR="$OUT/cache"  # one extension build for the commands below

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  echo "== the whole test suite"
  t0=$(ms)
  python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tail -15
  echo "pytest wall time: $(( $(ms) - t0 )) ms"

  echo "== group: DeepSeek-V4-Pro, mm_out_dtype, cold L2, against the earlier run of the same command"
  gb group --preset deepseek-v4-pro --m 1,16,128,1024,4096 --backend mm_out_dtype --out-dir "$OUT/groups" --md
  gb compare docs/runs/h200_groups_v4.json "$OUT"/groups/*.json --md
  python3 - "$OUT"/groups/*.json <<'PY'
import sys
from gemmbench.records.runfile import load_run
for g in load_run(sys.argv[1]).groups:
    c = g.clocks
    print(f"group M={g.m}: parallel {g.parallel_device.median_us:.2f} us serial {g.serial_device.median_us:.2f} us "
          f"sm_clock_mhz={c and c.sm_clock_mhz} power_w={c and c.power_w} throttled={g.throttled} "
          f"reasons={c and c.throttle_reasons} copies={g.l2_copies} noisy={g.noisy}")
PY

  echo "== sweep and kernels"
  t0=$(ms)
  gb sweep --preset deepseek-v3 --m 1,16,4096 --out-dir "$OUT/runs" --md
  echo "sweep wall time: $(( $(ms) - t0 )) ms"
  gb kernels --preset deepseek-v3 --m 1,16 --backend mm_out_dtype,router_small_m_ext --md
} 2>&1 | tee "$OUT/structure_check.log"

echo "== summary"
grep -E "passed|failed|wall time|^group M=|geometric mean|Error" "$OUT/structure_check.log"
