#!/usr/bin/env bash
# The routing-fidelity table of docs/routing.md in one call on the GPU machine: every preset's router at
# M = 1 and 4096 with mm_out_dtype, linear_cast and the first tier, on synthetic N(0, 1) hidden states and
# on hidden states with outlier channels (no kernel pass). Under $OUT only the run files
# (routing_normal.json, routing_outliers.json) and the log: the device machine returns only a few files.
# `python scripts/checks/routing_table.py RUN...` turns them into the page's tables.
# Usage (from the repository root): OUT=/some/dir bash scripts/checks/routing_check.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
PRESETS="--preset deepseek-v3 --preset deepseek-v3.2 --preset deepseek-v4-pro --preset deepseek-v4-flash \
  --preset kimi-k2 --preset glm-5 --preset qwen3-235b-a22b --preset qwen3-30b-a3b"
BACKENDS="mm_out_dtype,linear_cast,router_small_m,router_small_m_ext,router_small_m_mma"

{
  gb ext build > /dev/null
  for data in normal outliers; do
    t0=$(ms)
    # shellcheck disable=SC2086
    gb sweep $PRESETS --role router --m 1,4096 --backend "$BACKENDS" --activations "$data" --no-kernels \
      --placements 1 --out-dir "/tmp/gemmbench-routing/$data" --quiet > /dev/null; rc=$?
    echo "routing sweep ($data) wall time: $(( $(ms) - t0 )) ms (exit $rc)"
    cp "$(ls -t /tmp/gemmbench-routing/$data/*.json | head -1)" "$OUT/routing_$data.json"
  done
} 2>&1 | tee "$OUT/routing_check.log"
