#!/usr/bin/env bash
# The sampler before and after a change, on one machine start (docs/validation.md, how long a new user
# waits): default DeepSeek-V3 sweeps of the checkout and of BASELINE (a folder holding an earlier gemmbench
# package and its configs/), alternating after, before, after, before, without the kernel pass (it runs
# after every timer, so it moves no figure); then each pair's repeatability. Run files tarred into $OUT.
# Usage (from the repository root): OUT=/some/dir BASELINE=/abs/dir bash research/checks/sampler_check.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/checks/common.sh"
WORK=$(mktemp -d)
export GEMMBENCH_CACHE_DIR="$WORK/cache"
for run in after_a before_a after_b before_b; do
  t0=$(ms)
  if [[ $run == after* ]]; then
    gb sweep --preset deepseek-v3 --no-kernels --out-dir "$WORK/$run" --quiet > /dev/null
  else
    (cd "$BASELINE" && PYTHONPATH=$BASELINE python3 -m gemmbench sweep --preset deepseek-v3 --no-kernels \
      --out-dir "$WORK/$run" --quiet > /dev/null)
  fi
  echo "$run wall time: $(( $(ms) - t0 )) ms"
done 2>&1 | tee "$OUT/sampler_check.log"
for pair in after before; do
  echo "== $pair"
  python3 research/checks/repeatability.py "$WORK/${pair}_a"/*.json "$WORK/${pair}_b"/*.json
done 2>&1 | tee -a "$OUT/sampler_check.log" | grep -v "^  "
rm -rf "$WORK/cache"
tar -czf "$OUT/sampler_check_runs.tar.gz" -C "$WORK" .
