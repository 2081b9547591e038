# Sourced by the GPU check scripts: the output folder, the checkout on PYTHONPATH, two helpers.
OUT=${OUT:-gpu_out}  # scratch output; ignored by git
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
# The GPU machine's Python packages are read-only, so each process compiled torch's modules afresh (5.3 s of
# a default sweep's 73 s under cProfile): keep the bytecode where it can be written, as an install has it.
export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-/tmp/gemmbench-pycache}
gb() { python3 -m gemmbench "$@"; }
ms() { date +%s%3N; }
