#!/usr/bin/env bash
# The fleet on a machine with two or more GPUs, in one call: the DeepSeek-V3 sweep on one GPU, then under
# torchrun with --split points and --split none (wall times), gemmbench fleet on the latter, whether the
# merged run holds the same points as the one-GPU run, and a --split points run whose rank 1 is killed
# mid-run. Full log under $OUT, summary last.
# Usage (from the repository root): OUT=/some/dir bash scripts/checks/fleet_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
GPUS=$(nvidia-smi -L | wc -l)

{
  nvidia-smi -L
  gb ext build > /dev/null  # once, before the ranks start
  t0=$(ms)
  gb sweep --preset deepseek-v3 --out-dir "$OUT/single" -q > "$OUT/single.txt"
  echo "one GPU: wall time $(( $(ms) - t0 )) ms"
  for split in points none; do
    t0=$(ms)
    torchrun --nproc-per-node "$GPUS" -m gemmbench -- sweep --preset deepseek-v3 --split "$split" \
      --out-dir "$OUT/$split" -q > "$OUT/$split.txt" 2> "$OUT/$split.err"
    echo "torchrun $GPUS GPUs, --split $split: exit $?, wall time $(( $(ms) - t0 )) ms"
  done
  gb fleet "$OUT"/none/*.json
  gb fleet "$OUT"/none/*.json --md > "$OUT/fleet.md"
  python3 - "$OUT"/single/*.json "$OUT"/points/*.json "$OUT"/none/*.json <<'PY'
import sys
from collections import Counter
from gemmbench.records.runfile import load_run
single, points, none = (load_run(p) for p in sys.argv[1:])
key = lambda r: (r.case, r.backend)
print("split points: same points as one GPU:", sorted(map(str, map(key, points.records))) == sorted(map(str, map(key, single.records))),
      f"({len(points.records)} rows; per rank {dict(Counter(r.rank for r in points.records))}; complete {points.complete})")
print("split none: rows per rank", dict(Counter(r.rank for r in none.records)), "complete", none.complete)
PY
  echo "== --split points, rank 1 killed after 12 s"
  torchrun --nproc-per-node "$GPUS" -m gemmbench -- sweep --preset deepseek-v3 --split points \
    --out-dir "$OUT/killed" -q > "$OUT/killed.txt" 2> "$OUT/killed.err" &
  sleep 12
  for pid in $(pgrep -f "gemmbench -- sweep"); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2> /dev/null | grep -qx "RANK=1"; then kill -9 "$pid" && echo "killed rank 1 (pid $pid)"; fi
  done
  wait
  echo "torchrun exit: $?"
  python3 - "$OUT"/killed/*.json <<'PY'
import sys
from collections import Counter
from gemmbench.records.runfile import load_run
run = load_run(sys.argv[1])
print("killed run: complete", run.complete, "rows by (rank, status)", dict(Counter((r.rank, r.status) for r in run.records)))
print("an error row:", next((r.reason for r in run.records if r.status == "error"), None))
PY
} 2>&1 | tee "$OUT/fleet.log"

echo "== summary"
grep -E "wall time|same points|rows per rank|killed|complete|outlier|ok  " "$OUT/fleet.log"
