#!/usr/bin/env bash
# Builds .engines/ (git-ignored) in the repository root: FlashInfer's router GEMM and RMSNorm, cut down so
# that they travel to the GPU machine, which has no network and no FlashInfer and receives at most 64 MiB per
# call, the repository included. The wheels do not fit (flashinfer-python is 59 MiB zipped, 426 MiB installed),
# so this keeps, from flashinfer-python, only:
#   - the Python modules that can be imported without FlashInfer's heavy optional dependencies (CuTe DSL,
#     cuda-python, cuDNN frontend, cuda-tile, ...), which the GPU machine lacks: a superset of what
#     `import flashinfer` loads there, so no import can miss a file;
#   - the CUDA sources of the two JIT modules, `dsv3_router_gemm` (data/csrc/dsv3_router_gemm.cu: mm_M1_16_K7168_N256,
#     mm_M1_16_K7168_N384, mm_M1_16_K6144_N256, ...) and `norm` (data/csrc/norm.cu, flashinfer_norm_binding.cu:
#     rmsnorm, fused_add_rmsnorm, ...), read from FlashInfer's own JIT specs, and every header they include,
#     transitively (FlashInfer's, its vendored CCCL's), followed through the CUDA toolkit's headers too;
#   - plus tvm-ffi (less its libbacktrace sources and test library) and the small pure-Python dependencies that
#     `import flashinfer` needs and the GPU machine may lack (tqdm, requests and its four, packaging).
# Layout: .engines/site (flashinfer, tvm_ffi), .engines/deps (the small dependencies), .engines/env.sh.
# Nothing is compiled here: each module is JIT-compiled by FlashInfer (nvcc + ninja) at its first use on the GPU
# machine, about a minute, into $FLASHINFER_WORKSPACE_BASE/.cache/flashinfer/<version>/<arch>/cached_ops/.
# Optionally ENGINE_AOT_DIR=DIR with DIR/dsv3_router_gemm.so and/or DIR/norm.so (such .so files, built there by an
# earlier run, from that cached_ops folder) places them as FlashInfer AOT modules (flashinfer/data/aot/NAME/NAME.so),
# which FlashInfer loads without compiling (no hash or flag check: they must match the GPU's arch, e.g. sm_90a).
#
# Usage, on the CPU machine (needs python3, and the CUDA toolkit's headers for the header scan: $CUDA_HOME or
# /usr/local/cuda), from anywhere:
#   ENGINE_WHEELS=/tmp/fiwhl bash scripts/checks/engine_carry.sh
# ENGINE_WHEELS (default ~/.cache/gemmbench/engine-wheels) holds the wheels; any that are missing are downloaded
# into it with pip (PyPI). Prints the folder's size last and fails if it is over 45 MiB.
#
# On the GPU machine, in the repository root (pass carry [".engines"] once /.engines/ is git-ignored), one line:
#   source .engines/env.sh
# which amounts to, where the toolkit is /usr/local/cuda and has lib64/stubs/libcuda.so and cublasLt.h:
#   export PYTHONPATH=$PWD/.engines/site:$PWD/.engines/deps${PYTHONPATH:+:$PYTHONPATH} CUDA_HOME=/usr/local/cuda \
#     FLASHINFER_WORKSPACE_BASE=/tmp/gemmbench-flashinfer FLASHINFER_USE_CUDA_NORM=1
# env.sh puts .engines/deps on the path only where tqdm, requests or packaging is missing, finds CUDA_HOME from
# nvcc when unset (FlashInfer's own guess, dirname(dirname(which nvcc)), is wrong behind a wrapper or symlink),
# and where the toolkit lacks them, links a libcuda.so for `-lcuda` (FLASHINFER_EXTRA_LDFLAGS) and points nvcc at
# pip's cuBLAS/cuRAND headers (FLASHINFER_EXTRA_CUDAFLAGS): norm.cu includes cublasLt.h and curand_kernel.h.
set -euo pipefail

FI_VERSION=0.7.2.post1
TVM_FFI_VERSION=0.1.15.post2
# Small dependencies imported by `import flashinfer` (pinned: the wheels are cached by name and version).
DEPS="tqdm==4.70.1 requests==2.34.2 urllib3==2.8.0 idna==3.21 certifi==2026.10.19.post1 charset-normalizer==3.5.3 packaging==26.4"
LIMIT_MIB=45

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/.engines"
WHEELS=${ENGINE_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/gemmbench/engine-wheels}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
mkdir -p "$WHEELS"

if [ ! -e "$CUDA_HOME/include/cuda_runtime.h" ]; then
  echo "engine_carry: no CUDA toolkit headers under CUDA_HOME=$CUDA_HOME (the header scan follows them); set CUDA_HOME" >&2
  exit 1
fi

# wheel NAME==VERSION: the cached wheel's path, downloaded first when absent (cp312, x86_64 Linux, as on the GPU machine).
wheel() {
  local name=${1%%==*} version=${1#*==} file
  file=$(ls "$WHEELS/$(echo "$name" | tr - _)-$version-"*.whl 2>/dev/null | head -1 || true)
  if [ -z "$file" ]; then
    echo "engine_carry: downloading $1 into $WHEELS" >&2
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --abi cp312 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" "$1" >&2
    file=$(ls "$WHEELS/$(echo "$name" | tr - _)-$version-"*.whl | head -1)
  fi
  echo "$file"
}

FI_WHL=$(wheel "flashinfer-python==$FI_VERSION")
TVM_WHL=$(wheel "apache-tvm-ffi==$TVM_FFI_VERSION")
DEP_WHLS=()
for d in $DEPS; do DEP_WHLS+=("$(wheel "$d")"); done

rm -rf "$OUT.tmp"
python3 - "$OUT.tmp" "$FI_WHL" "$TVM_WHL" "$CUDA_HOME/include" "${ENGINE_AOT_DIR:-}" "${DEP_WHLS[@]}" <<'PY'
import ast, os, posixpath, re, shutil, sys, zipfile

out, fi_whl, tvm_whl, cuda_inc, aot_dir, *dep_whls = sys.argv[1:]
site, deps = os.path.join(out, "site"), os.path.join(out, "deps")
fi = zipfile.ZipFile(fi_whl)
names = set(fi.namelist())

# Third-party packages taken to be absent on the GPU machine: a module importing one of them unguarded at its top
# level cannot be imported there, and neither can a module importing such a module; those are left out. Every
# guarded import of a left-out module in what is kept catches ImportError, so leaving them out changes no import.
ABSENT = {"cutlass", "cuda.tile", "cuda.bindings", "cuda.core", "cudnn", "tilelang", "nvshmem", "tvm", "quack",
          "tirx_kernels", "b12x", "tg4perfetto", "einops", "tabulate", "deep_gemm", "cupti", "mpi4py"}


def module_file(parts):
    base = "/".join(parts)
    for cand in (base + ".py", base + "/__init__.py"):
        if cand in names:
            return cand
    return None


py_files = sorted(n for n in names if n.startswith("flashinfer/") and n.endswith(".py")
                  and not n.startswith("flashinfer/data/"))


def imports(name, tree, scope):
    """flashinfer files named by the imports of one module: 'top' (unguarded module-level statements), 'module'
    (anywhere outside function bodies: try/if/with/class blocks too) or 'all' (function bodies too), and whether
    a 'top' import names an absent package."""
    package = name[:-3].split("/")[:-1]  # a module's own package; for __init__.py that is the package itself
    found, absent = set(), False

    def visit(stmts, depth):
        nonlocal absent
        for node in stmts:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and scope != "all":
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if isinstance(node, ast.Import):
                    mods = [alias.name.split(".") for alias in node.names]
                else:
                    prefix = (package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
                              if node.level else node.module.split("."))
                    mods = [prefix] + [prefix + [a.name] for a in node.names]
                for mod in mods:
                    if mod[0] == "flashinfer":
                        for i in range(1, len(mod) + 1):
                            if module_file(mod[:i]):
                                found.add(module_file(mod[:i]))
                    elif depth == 0 and any(".".join(mod) == a or ".".join(mod).startswith(a + ".") for a in ABSENT):
                        absent = True
            elif scope != "top":
                for field in ("body", "orelse", "finalbody", "handlers"):
                    sub = getattr(node, field, None)
                    if isinstance(sub, list):
                        visit(sub, depth + 1)

    visit(tree.body, 0)
    return found, absent


trees = {}
for name in py_files:
    try:
        trees[name] = ast.parse(fi.read(name))
    except SyntaxError:
        pass
# 1. Importable on the GPU machine: no unguarded top-level import of an absent package, nor of a module that has one.
top = {n: imports(n, t, "top") for n, t in trees.items()}
bad = set(py_files) - set(trees) | {n for n, (_, absent) in top.items() if absent}
changed = True
while changed:
    changed = False
    for name, (internal, _) in top.items():
        if name not in bad and internal & bad:
            bad.add(name)
            changed = True
# 2. Of those, what `import flashinfer` can reach through module-level imports (whichever try/if branch runs there),
# plus every import of the modules on the two ops' call path (their lazy, function-level ones included), plus the
# other modules of each folder reached (a margin for imports no static reading sees).
CALL_PATH = ["flashinfer/__init__.py", "flashinfer/gemm/routergemm.py", "flashinfer/norm/__init__.py",
             "flashinfer/jit/dsv3_optimizations.py", "flashinfer/jit/norm.py", "flashinfer/jit/core.py",
             "flashinfer/jit/cpp_ext.py", "flashinfer/jit/env.py", "flashinfer/utils.py", "flashinfer/api_logging.py",
             "flashinfer/compilation_context.py"]
reached, stack = set(), [n for n in CALL_PATH if n not in bad]
for n in CALL_PATH:
    assert n in trees and n not in bad, f"{n} would be left out"
    stack += imports(n, trees[n], "all")[0]
while stack:
    name = stack.pop()
    if name in reached or name in bad or name not in trees:
        continue
    reached.add(name)
    parts = name.split("/")
    stack += [p for p in (module_file(parts[:i]) for i in range(1, len(parts))) if p]  # parent packages
    stack += imports(name, trees[name], "module")[0]
folders = {posixpath.dirname(n) for n in reached}
keep_py = sorted(reached | {n for n in trees if n not in bad and posixpath.dirname(n) in folders})


# The JIT modules' sources, from FlashInfer's own specs: every "NAME.cu" joined to FLASHINFER_CSRC_DIR.
def spec_sources(module, func):
    tree = ast.parse(fi.read(module))
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == func)
    srcs = [c.value for c in ast.walk(fn) if isinstance(c, ast.Constant) and isinstance(c.value, str)
            and c.value.endswith((".cu", ".cpp"))]
    assert srcs, f"no sources found in {module}:{func}"
    return ["flashinfer/data/csrc/" + s for s in srcs]


sources = (spec_sources("flashinfer/jit/dsv3_optimizations.py", "gen_dsv3_router_gemm_module")
           + spec_sources("flashinfer/jit/norm.py", "gen_norm_module"))

# Header closure, following every #include whatever the #if around it (a superset of what any arch pulls in),
# resolved in the order of FlashInfer's nvcc command line (cpp_ext.build_common_cflags): the vendored CCCL (-I),
# then the toolkit, tvm-ffi, FlashInfer's include/ and csrc/, CUTLASS and spdlog (-isystem), then the toolkit's
# own CCCL. Headers outside the wheel are followed (the toolkit's cooperative_groups include CCCL's cuda/std ones)
# but not carried.
tvm = zipfile.ZipFile(tvm_whl)
tvm_names = set(tvm.namelist())
D = "flashinfer/data/"
search = [("fi", D + "cccl/cub"), ("fi", D + "cccl/libcudacxx/include"), ("fi", D + "cccl/thrust"),
          ("fs", cuda_inc), ("tvm", "tvm_ffi/include"), ("fi", D + "include"), ("fi", D + "csrc"),
          ("fi", D + "cutlass/include"), ("fi", D + "cutlass/tools/util/include"), ("fi", D + "spdlog/include"),
          ("fs", os.path.join(cuda_inc, "cccl"))]


def exists(kind, path):
    if kind == "fi":
        return path in names
    if kind == "tvm":
        return path in tvm_names
    return os.path.isfile(path)


def read(kind, path):
    if kind == "fi":
        return fi.read(path).decode("utf-8", "replace")
    if kind == "tvm":
        return tvm.read(path).decode("utf-8", "replace")
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def join(kind, base, rel):
    return os.path.normpath(os.path.join(base, rel)) if kind == "fs" else posixpath.normpath(posixpath.join(base, rel))


include = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]', re.M)
seen, stack = set(), [("fi", s) for s in sources]
for s in sources:
    assert s in names, f"{s} is not in the wheel"
while stack:
    node = stack.pop()
    if node in seen:
        continue
    seen.add(node)
    kind, path = node
    for quote, inc in include.findall(read(kind, path)):
        dirs = ([(kind, posixpath.dirname(path) if kind != "fs" else os.path.dirname(path))] if quote == '"' else [])
        for k, d in dirs + search:
            cand = join(k, d, inc)
            if exists(k, cand):
                stack.append((k, cand))
                break
headers = sorted(p for k, p in seen if k == "fi")

# Write the trimmed tree.
os.makedirs(site)
dist = f"flashinfer_python-{os.path.basename(fi_whl).split('-')[1]}.dist-info/"
keep = set(keep_py) | set(headers) | {"flashinfer/py.typed"}
keep |= {n for n in names if n.startswith(dist) and not n.endswith("/RECORD")}  # RECORD would list dropped files
keep.add(D + "cutlass/include/cutlass/arch/arch.h")  # read by compilation_context.cutlass_supports_sm107()
for n in sorted(keep & names):
    fi.extract(n, site)
for d in ("cutlass/include", "cutlass/tools/util/include", "spdlog/include"):  # -isystem dirs on nvcc's line
    os.makedirs(os.path.join(site, D, d), exist_ok=True)
for n in tvm.namelist():
    if n.startswith("tvm_ffi/3rdparty/libbacktrace/"):  # libtvm_ffi_testing.so stays: tvm_ffi loads it on import
        continue
    tvm.extract(n, site)
for n in tvm.namelist():
    info = tvm.getinfo(n)
    mode = info.external_attr >> 16
    if mode and os.path.exists(os.path.join(site, n)):
        os.chmod(os.path.join(site, n), mode & 0o777 | 0o600)
os.makedirs(deps)
for w in dep_whls:
    zipfile.ZipFile(w).extractall(deps)
aot = []
if aot_dir:
    for mod in ("dsv3_router_gemm", "norm"):
        so = os.path.join(aot_dir, mod + ".so")
        if os.path.isfile(so):
            dst = os.path.join(site, D, "aot", mod)
            os.makedirs(dst)
            shutil.copy2(so, os.path.join(dst, mod + ".so"))
            aot.append(mod)

with open(os.path.join(out, "MANIFEST.txt"), "w") as f:
    f.write(f"Written by scripts/checks/engine_carry.sh from {os.path.basename(fi_whl)}, "
            f"{os.path.basename(tvm_whl)} and {', '.join(os.path.basename(w) for w in dep_whls)}.\n")
    f.write(f"JIT sources: {', '.join(s[len(D):] for s in sources)}\n")
    f.write(f"AOT modules: {', '.join(aot) or 'none (JIT-compiled at first use)'}\n")
    f.write(f"Python modules kept: {len(keep_py)} of {len(py_files)}; headers kept: {len(headers)}\n")
    for h in headers:
        f.write(h[len(D):] + "\n")
print(f"engine_carry: {len(keep_py)} of {len(py_files)} FlashInfer modules, {len(headers)} headers and sources "
      f"({', '.join(s[len(D) + 5:] for s in sources)}), AOT: {', '.join(aot) or 'none'}")
PY

cat > "$OUT.tmp/env.sh" <<'SH'
# Source from the repository root on the GPU machine (written by scripts/checks/engine_carry.sh): makes the carried
# FlashInfer importable and sets what its JIT needs. Variables already set are kept.
_engines="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
export PYTHONPATH="$_engines/site${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "import tqdm, requests, packaging" 2>/dev/null; then export PYTHONPATH="$PYTHONPATH:$_engines/deps"; fi
if [ -z "${CUDA_HOME:-}" ]; then
  for _c in "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc || echo /nonexistent/bin/nvcc)")")")" /usr/local/cuda; do
    if [ -x "$_c/bin/nvcc" ] && [ -e "$_c/include/cuda_runtime.h" ]; then export CUDA_HOME="$_c"; break; fi
  done
fi
export FLASHINFER_WORKSPACE_BASE="${FLASHINFER_WORKSPACE_BASE:-${TMPDIR:-/tmp}/gemmbench-flashinfer}"
export FLASHINFER_USE_CUDA_NORM="${FLASHINFER_USE_CUDA_NORM:-1}"  # norm.cu's kernels even where the CuTe DSL is installed
# The JIT links with -L$CUDA_HOME/lib64/stubs -lcuda: without a libcuda.so there, link the driver's.
if [ -z "${FLASHINFER_EXTRA_LDFLAGS:-}" ] && [ ! -e "${CUDA_HOME:-}/lib64/stubs/libcuda.so" ] && [ ! -e "${CUDA_HOME:-}/lib64/libcuda.so" ]; then
  _lc=$(ldconfig -p 2>/dev/null | awk '$1 == "libcuda.so.1" || $1 == "libcuda.so" {print $NF; exit}')
  if [ -n "$_lc" ]; then
    mkdir -p "$FLASHINFER_WORKSPACE_BASE/libcuda" && ln -sf "$_lc" "$FLASHINFER_WORKSPACE_BASE/libcuda/libcuda.so"
    export FLASHINFER_EXTRA_LDFLAGS="-L$FLASHINFER_WORKSPACE_BASE/libcuda"
  fi
fi
# norm.cu includes cublasLt.h and curand_kernel.h: where the toolkit lacks them, use pip's (torch's nvidia-* wheels).
if [ -z "${FLASHINFER_EXTRA_CUDAFLAGS:-}" ] && { [ ! -e "${CUDA_HOME:-}/include/cublasLt.h" ] || [ ! -e "${CUDA_HOME:-}/include/curand_kernel.h" ]; }; then
  _inc=$(python3 -c "
import glob, os, sys
dirs = []
for h in ('cublasLt.h', 'curand_kernel.h'):
    for p in sys.path:
        hits = glob.glob(os.path.join(p, 'nvidia', '*', 'include', h))
        if hits:
            d = os.path.dirname(hits[0])
            dirs += [d] if d not in dirs else []
            break
print(' '.join('-isystem ' + d for d in dirs))" 2>/dev/null)
  if [ -n "$_inc" ]; then export FLASHINFER_EXTRA_CUDAFLAGS="$_inc"; fi
fi
unset _engines _c _lc _inc
SH

rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
size_kib=$(du -sk "$OUT" | cut -f1)
echo "engine_carry: $OUT: $(du -sh "$OUT/site" | cut -f1) site, $(du -sh "$OUT/deps" | cut -f1) deps"
echo "engine_carry: size $(( (size_kib + 1023) / 1024 )) MiB (limit $LIMIT_MIB MiB)"
if [ "$size_kib" -gt $(( LIMIT_MIB * 1024 )) ]; then
  echo "engine_carry: over the limit" >&2
  exit 1
fi
