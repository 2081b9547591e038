#!/usr/bin/env bash
# Where a sweep's wall time goes (docs/validation.md, how long a new user waits), on the GPU machine in one
# call: a first default sweep from an empty cache, the same sweep again and the kernel pass of three points,
# each under cProfile (the .prof files come back under $OUT), the sweeps keeping their raw samples so that
# stopping rules can be replayed on them offline. Usage: OUT=/some/dir bash research/checks/sweep_profile.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"
export GEMMBENCH_CACHE_DIR="$OUT/cache"
profiled() { local name=$1; shift; python3 -m cProfile -o "$OUT/$name.prof" -m gemmbench "$@"; }
summary() {
  python3 - "$1" <<'PY'
import pstats, sys
stats = pstats.Stats(sys.argv[1])
stats.sort_stats("cumulative").print_stats(45)
PY
}
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  t0=$(ms); gb ext build > /dev/null; echo "ext build wall time: $(( $(ms) - t0 )) ms"
  for run in first again; do
    t0=$(ms)
    profiled "$run" sweep --preset deepseek-v3 --out-dir "$OUT/$run" --keep-samples --quiet > "$OUT/$run.txt"
    echo "sweep $run wall time (under cProfile): $(( $(ms) - t0 )) ms"
  done
  t0=$(ms)
  profiled kernels kernels --preset deepseek-v3 --m 1,16,4096 > "$OUT/kernels.txt"
  echo "kernels wall time (under cProfile): $(( $(ms) - t0 )) ms"
  t0=$(ms)
  python3 -c "import gemmbench.cli, torch; torch.zeros(1, device='cuda'); torch.cuda.synchronize()"
  echo "import and CUDA context wall time: $(( $(ms) - t0 )) ms"
  for name in first again kernels; do echo "== $name"; summary "$OUT/$name.prof" > "$OUT/$name.pstats.txt"; done
  python3 research/checks/repeatability.py "$OUT"/first/*.json "$OUT"/again/*.json
} 2>&1 | tee "$OUT/sweep_profile.log"
echo "== summary"
grep -E "wall time|\|B/A - 1\|, all|flagged noisy" "$OUT/sweep_profile.log"
