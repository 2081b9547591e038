#!/usr/bin/env bash
# Every answer gemmbench gives from saved runs, over every run file in the repository, written to one
# file per command under DIR: run it before and after a refactor and `diff -r` the two folders. No GPU.
# Usage (from the repository root): bash scripts/checks/outputs_snapshot.sh DIR
set -uo pipefail
DIR=${1:?usage: outputs_snapshot.sh DIR}
mkdir -p "$DIR"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} COLUMNS=160 NO_COLOR=1 TERM=dumb
gb() { python3 -m gemmbench "$@"; }
# The run's file name, with the volatile parts of an output (the path of the checkout) taken out.
out() { sed "s#$PWD#.#g" > "$DIR/$1"; }

runs=(docs/runs/*.json tests/fixtures/h*.json)
for run in "${runs[@]}"; do
  name=$(basename "$run" .json)
  { gb show "$run"; echo "exit $?"; } 2>&1 | out "$name.show.txt"
  { gb show "$run" --md --all-rows; echo "exit $?"; } 2>&1 | out "$name.show.md"
  { gb show "$run" --json -; echo "exit $?"; } 2>&1 | out "$name.show.json"
  { gb show "$run" --csv -; echo "exit $?"; } 2>&1 | out "$name.show.csv"
  { gb recommend "$run"; echo "exit $?"; } 2>&1 | out "$name.recommend.txt"
  { gb recommend "$run" --md; echo "exit $?"; } 2>&1 | out "$name.recommend.md"
  { gb recommend "$run" --json; echo "exit $?"; } 2>&1 | out "$name.recommend.json"
  { gb recommend "$run" --python; echo "exit $?"; } 2>&1 | out "$name.recommend.py"
  { gb kernels --from "$run" --md; echo "exit $?"; } 2>&1 | out "$name.kernels.md"
done
# compare: each A/B pair the repository keeps, and every run against the first A/A run (mismatch allowed).
pairs=("docs/runs/h100_aa_1.json docs/runs/h100_aa_2.json"
       "docs/runs/h200_deepseek_v3_cold_a.json docs/runs/h200_deepseek_v3_cold_b.json"
       "docs/runs/h200_repeat1_a.json docs/runs/h200_repeat1_b.json"
       "tests/fixtures/h200_deepseek_v3_sm90.json tests/fixtures/h200_deepseek_v3_sm90_b.json")
for pair in "${pairs[@]}"; do
  set -- $pair
  name="$(basename "$1" .json)-vs-$(basename "$2" .json)"
  { gb compare "$1" "$2"; echo "exit $?"; } 2>&1 | out "$name.compare.txt"
  { gb compare "$1" "$2" --md --all-rows; echo "exit $?"; } 2>&1 | out "$name.compare.md"
done
for run in docs/runs/h200_one_rank_torchrun.json docs/runs/h200_one_gpu_plain.json; do
  name=$(basename "$run" .json)
  { gb fleet "$run" --md; echo "exit $?"; } 2>&1 | out "$name.fleet.md"
  { gb fleet "$run" --json; echo "exit $?"; } 2>&1 | out "$name.fleet.json"
done
ls "$DIR" | wc -l
