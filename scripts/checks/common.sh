# Sourced by the GPU check scripts: the output folder, the checkout on PYTHONPATH, two helpers.
OUT=${OUT:-gpu_out}  # scratch output; ignored by git
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
gb() { python3 -m gemmbench "$@"; }
ms() { date +%s%3N; }
