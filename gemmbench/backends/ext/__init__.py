"""The optional extension: C++ and CUDA source in this folder, built on demand, cached per user.

The build goes to `<cache>/ext/<key>`, the key a hash of the sources, the torch version, its CUDA version
and the GPU architectures compiled for: a rebuild happens only when one of them changes, and a cached
library loads in well under a second. It links the very libcublas and libcublasLt that torch loaded, so
the extension shares torch's cuBLAS (and handles) instead of bringing a second copy.

Operators (torch.ops.gemmbench.*), each with a fake implementation for shapes without a GPU: `gemm_ex(x, w)`,
`gemm_ex_out(x, w, out)`: cublasGemmEx, bf16 x bf16 -> fp32, compute fp32; `lt(x, w, algo)`, `lt_out(x, w,
out, algo)`: cublasLtMatmul with the heuristic's algorithm `algo` (0 = its best), `lt_algo_count(x, w)` how
many it offers for the shape; `router_small_m_out(x, w, out, pdl)`: gemmbench's CUDA kernel for M <= 16
(router_small_m.cu), with programmatic dependent launch where `pdl`; `router_small_m_mma_out(x, w, out, pdl,
warps, splits)`: its tensor-core kernel for M <= 16 on sm90+ (router_small_m_mma.cu), `warps` per CTA and
`splits` of K per cluster (0: the kernel's choice); `rms_norm_out(h, weight, eps, x, trigger)`: gemmbench's
RMSNorm (rms_norm.cu), the producer of the `gemmbench_norm_pdl_*` contexts, `trigger` where it lets a PDL
dependent launch (0 never, 1 at its start, 2 after its stores).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from gemmbench.cache import cache_root

CUBLAS_SOURCE = Path(__file__).with_name("cublas_gemm.cpp")
ROUTER_SOURCE = Path(__file__).with_name("router_small_m.cu")
ROUTER_MMA_SOURCE = Path(__file__).with_name("router_small_m_mma.cu")
RMS_NORM_SOURCE = Path(__file__).with_name("rms_norm.cu")
SOURCES = (CUBLAS_SOURCE, ROUTER_SOURCE, ROUTER_MMA_SOURCE, RMS_NORM_SOURCE)
HEADERS = (Path(__file__).with_name("device.cuh"), Path(__file__).with_name("router_limits.h"))  # in the build key
# Where gemmbench's own kernels (the router_small_m_ext and router_small_m_mma backends', the gemmbench_norm_pdl_*
# context's) do not compile, the extension is built without them (the cuBLAS operators need no nvcc), and
# the compiler's output is kept under this name: the rows that need them then say why.
ROUTER_LOG_NAME = "router_kernel_build.log"
WITHOUT_ROUTER_KERNEL = "-DGEMMBENCH_NO_ROUTER_KERNEL"
# Where only the tensor-core kernel does not compile (a toolkit whose PTX lacks clusters): without it, its log here.
MMA_LOG_NAME = "mma_kernel_build.log"
WITHOUT_MMA_KERNEL = "-DGEMMBENCH_NO_MMA_KERNEL"
ARCH_ENV = "TORCH_CUDA_ARCH_LIST"
# Where no GPU is present to say which architecture to compile for (a build ahead of time): the H100/H200's.
DEFAULT_ARCH = "9.0"
LOG_NAME = "build.log"
# Hex digits of the build key: 64 bits, so two source/torch/CUDA combinations never share a folder.
BUILD_KEY_HEX_DIGITS = 16


class ExtensionUnavailable(Exception):
    """The extension cannot be built or loaded here; the message says what is missing."""


@dataclass(frozen=True)
class ExtensionStatus:
    built: bool
    library: Path
    torch: str
    cuda: str | None
    cannot_build: str | None  # why a build is impossible here, or None
    cannot_run: str | None  # why the operators cannot run here (no GPU, ...), or None
    build_log: Path | None  # the log of the last failed build, if any
    router_kernel_problem: str | None  # why it was built without gemmbench's own kernels, or None
    mma_kernel_problem: str | None  # why it was built without router_small_m_mma's kernel only, or None

    def facts(self) -> dict:
        """What `gemmbench ext status` shows, flat."""
        return {
            "built": self.built,
            "library": str(self.library),
            "torch": self.torch,
            "cuda": self.cuda,
            "can_build": self.cannot_build is None,
            "cannot_build": self.cannot_build,
            "can_run_here": self.cannot_run is None and (self.built or self.cannot_build is None),
            "cannot_run": self.cannot_run,
            "last_build_log": str(self.build_log) if self.build_log else None,
            "router_kernel_problem": self.router_kernel_problem,
            "mma_kernel_problem": self.mma_kernel_problem,
        }


@functools.cache
def _source() -> bytes:
    """The extension's sources, read once per process (every backend's availability check asks for the key)."""
    return b"".join(source.read_bytes() for source in SOURCES + HEADERS)


@functools.cache
def target_arches() -> str:
    """What decides the GPU architectures the kernel is compiled for: TORCH_CUDA_ARCH_LIST where set, else
    the GPUs present (from which torch derives the list itself), else DEFAULT_ARCH. Part of the build key,
    so that a library built for one GPU is not loaded for another."""
    if os.environ.get(ARCH_ENV):
        return os.environ[ARCH_ENV]
    if torch.cuda.is_available():
        capabilities = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
        return "gpus " + ";".join(f"{major}.{minor}" for major, minor in sorted(capabilities))
    return DEFAULT_ARCH


def build_key() -> str:
    digest = hashlib.sha256(_source())
    digest.update(f"{torch.__version__}|{torch.version.cuda}|{target_arches()}".encode())
    return digest.hexdigest()[:BUILD_KEY_HEX_DIGITS]


def build_dir() -> Path:
    return cache_root() / "ext" / build_key()


def module_name() -> str:
    return f"gemmbench_cublas_{build_key()}"


def library_path() -> Path:
    return build_dir() / f"{module_name()}.so"


def loaded_library(prefix: str) -> str | None:
    """Path of a shared library this process has mapped, e.g. the libcublas.so that torch loaded."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    match = re.search(rf"(/\S*/{re.escape(prefix)}\.so[.\d]*)\s*$", maps, re.MULTILINE)
    return match.group(1) if match else None


@dataclass(frozen=True)
class _TorchCublas:
    cublas: Path  # the library files torch loaded, e.g. .../nvidia/cu13/lib/libcublas.so.13
    cublaslt: Path
    include: Path  # the headers beside them


def _torch_cublas() -> _TorchCublas | None:
    """The cuBLAS and cuBLASLt that this torch loaded, and their headers; None if not found."""
    if torch.version.cuda is None:
        return None
    cublas, cublaslt = loaded_library("libcublas"), loaded_library("libcublasLt")
    if cublas is None or cublaslt is None:
        return None
    root = Path(cublas).parent.parent  # lib/ or lib64/ sits beside include/
    return _TorchCublas(Path(cublas), Path(cublaslt), root / "include")


@contextlib.contextmanager
def _quiet_torch():
    """torch's extension tooling prints notices and warnings (the CUDA_HOME it guessed, the architecture
    list) straight to the terminal; gemmbench reports what matters itself. Yields what was printed."""
    printed = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(printed), contextlib.redirect_stdout(printed):
        warnings.simplefilter("ignore")
        yield printed


def _cpp_extension():
    with _quiet_torch():
        from torch.utils import cpp_extension
    return cpp_extension


def cannot_build() -> str | None:
    """Why the extension cannot be built here, or None: every file and tool a build needs is checked."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build; the extension needs a CUDA build of torch"
    cpp_extension = _cpp_extension()
    cuda_home = Path(cpp_extension.CUDA_HOME) if cpp_extension.CUDA_HOME else None
    if cuda_home is None or not (cuda_home / "bin" / "nvcc").exists():
        return "no CUDA toolkit found (no nvcc); install one or set CUDA_HOME to the folder holding bin/nvcc"
    if not (cuda_home / "include" / "cuda_runtime.h").is_file():
        # torch guesses CUDA_HOME from the nvcc on PATH; a wrapper script there points it at the wrong folder
        return (
            f"torch takes the CUDA toolkit to be {cuda_home} (CUDA_HOME), but it has no include/cuda_runtime.h; "
            "set CUDA_HOME to the toolkit folder that holds both bin/nvcc and include/cuda_runtime.h"
        )
    if not cpp_extension.is_ninja_available():
        return "ninja is not installed; pip install ninja"
    libs = _torch_cublas()
    if libs is None:
        return "cannot find the libcublas that torch loaded"
    if not any((folder / "cublasLt.h").is_file() for folder in (libs.include, cuda_home / "include")):
        return f"no cuBLAS headers (cublasLt.h) in {libs.include}, beside the libcublas torch loaded, or in {cuda_home}"
    return None


def cannot_run() -> str | None:
    return None if torch.cuda.is_available() else "no CUDA device"


def status() -> ExtensionStatus:
    log = build_dir() / LOG_NAME
    return ExtensionStatus(
        built=library_path().is_file(),
        library=library_path(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cannot_build=cannot_build(),
        cannot_run=cannot_run(),
        build_log=log if log.is_file() and not library_path().is_file() else None,
        router_kernel_problem=router_kernel_problem(),
        mma_kernel_problem=mma_kernel_problem(),
    )


def is_loaded() -> bool:
    return str(library_path()) in torch.ops.loaded_libraries


def build() -> Path:
    """Compile the extension into the cache (a no-op when it is there). Raises ExtensionUnavailable."""
    if library_path().is_file():
        return library_path()
    problem = cannot_build()
    if problem:
        raise ExtensionUnavailable(problem)
    folder = build_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / LOG_NAME
    # Each build leaves out more of gemmbench's own kernels than the one before it, whose failure is kept
    # in the log named beside it: all of them, then all but the tensor-core one, then none.
    attempts = (
        (SOURCES, [], None),
        (tuple(s for s in SOURCES if s != ROUTER_MMA_SOURCE), [WITHOUT_MMA_KERNEL], MMA_LOG_NAME),
        ((CUBLAS_SOURCE,), [WITHOUT_ROUTER_KERNEL], ROUTER_LOG_NAME),
    )
    failure: Exception | None = None
    for sources, defines, log_of_the_failure_before in attempts:
        if failure is not None:
            (folder / log_of_the_failure_before).write_text(str(failure))
        try:
            _compile(sources, defines)
            break
        except Exception as exc:  # noqa: BLE001 - compiler and linker failures come as several types
            failure = exc
    else:
        log.write_text(f"{failure}\n")
        raise ExtensionUnavailable(f"the build failed (compiler output in {log})") from failure
    log.unlink(missing_ok=True)
    return library_path()


def _compile(sources: tuple[Path, ...], defines: list[str]) -> None:
    """One build of `sources` into the build folder; raises with the compiler's output on failure."""
    cpp_extension = _cpp_extension()
    libs = _torch_cublas()
    # Where no GPU is present for torch to derive the architecture list from, give it one.
    saved_arch = os.environ.get(ARCH_ENV)
    if saved_arch is None and not torch.cuda.is_available():
        os.environ[ARCH_ENV] = DEFAULT_ARCH
    try:
        with _quiet_torch() as printed:
            cpp_extension.load(
                name=module_name(),
                sources=[str(source) for source in sources],
                extra_cflags=["-O2", *defines],
                extra_cuda_cflags=["-O3"],
                extra_include_paths=[str(libs.include)],
                # Link the very files torch loaded (pip wheels ship only versioned names such as .so.13).
                extra_ldflags=[
                    f"-L{libs.cublas.parent}",
                    f"-Wl,-rpath,{libs.cublas.parent}",
                    f"-l:{libs.cublas.name}",
                    f"-L{libs.cublaslt.parent}",
                    f"-Wl,-rpath,{libs.cublaslt.parent}",
                    f"-l:{libs.cublaslt.name}",
                ],
                build_directory=str(build_dir()),
                with_cuda=True,
                is_python_module=False,
                verbose=False,
            )
    except Exception as exc:
        raise RuntimeError(f"{printed.getvalue()}{exc}") from exc
    finally:
        if saved_arch is None:
            os.environ.pop(ARCH_ENV, None)


def _left_out_log(name: str) -> Path | None:
    """The kept compiler output of kernels the extension was built without, or None: built with them, or
    not built at all (the extension's own failure then speaks). A query."""
    log = build_dir() / name
    return log if log.is_file() and not (build_dir() / LOG_NAME).is_file() else None


# The extension's router kernels and RMSNorm load 16 bytes (8 bf16) at a time along K.
K_MULTIPLE = 8


def unaligned_k(k: int) -> str | None:
    """Why the extension's kernels cannot take a GEMM (or a norm) of inner size `k`, or None."""
    return f"K must be a multiple of {K_MULTIPLE} (16-byte loads), got {k}" if k % K_MULTIPLE else None


def router_kernel_problem() -> str | None:
    """Why the extension was built without gemmbench's own kernels (router_small_m_ext's and router_small_m_mma's),
    or None. A query."""
    log = _left_out_log(ROUTER_LOG_NAME)
    if log is None:
        return None
    return (
        f"gemmbench's CUDA kernels did not compile (compiler output in {log}); the cuBLAS backends are "
        "unaffected; gemmbench ext clean retries"
    )


def mma_kernel_problem() -> str | None:
    """Why the extension was built without router_small_m_mma's kernel alone, or None. A query."""
    log = _left_out_log(MMA_LOG_NAME)
    if log is None or router_kernel_problem():  # without any of gemmbench's kernels: that problem speaks
        return None
    return (
        f"gemmbench's tensor-core kernel did not compile (compiler output in {log}); the other backends are "
        "unaffected; gemmbench ext clean retries"
    )


def load() -> None:
    """Build if needed, load the operators and register their fake implementations (once per process)."""
    if is_loaded():
        return
    build()
    try:
        torch.ops.load_library(str(library_path()))
    except (OSError, RuntimeError) as exc:  # a library that built but does not load (a missing symbol)
        raise ExtensionUnavailable(f"{library_path()} does not load ({exc}); gemmbench ext clean rebuilds it") from exc
    _register_fakes()


def _register_fakes() -> None:
    def new_output(x, w, algo=0):
        return x.new_empty((x.shape[0], w.shape[0]), dtype=torch.float32)

    def writes_in_place(*args, **kwargs):  # every *_out operator: its output is an argument, it returns nothing
        return None

    for name, fake in (
        ("gemm_ex", new_output),
        ("lt", new_output),
        ("gemm_ex_out", writes_in_place),
        ("lt_out", writes_in_place),
        ("router_small_m_out", writes_in_place),
        ("router_small_m_mma_out", writes_in_place),
        ("rms_norm_out", writes_in_place),
    ):
        if hasattr(torch.ops.gemmbench, name):  # gemmbench's own kernels are missing where they did not compile
            torch.library.register_fake(f"gemmbench::{name}")(fake)


_load_failure: str | None = None  # why the last `ensure_loaded` failed: a failed build is not retried


def unavailable_reason() -> str | None:
    """Why the extension's backends cannot run here, or None if they can (loaded, or it will build). A query:
    it never builds or loads anything; `ensure_loaded` does, once per process."""
    if is_loaded():
        return None
    problem = cannot_run() or _load_failure
    if problem:
        return problem
    if not library_path().is_file():
        reason = cannot_build()
        return f"cuBLAS extension unavailable: {reason}" if reason else None
    return None


def needs_build() -> bool:
    """True where `ensure_loaded` would compile the extension first (tens of seconds): worth announcing."""
    return not is_loaded() and not library_path().is_file() and unavailable_reason() is None


def ensure_loaded() -> str | None:
    """Build the extension if needed and load it; None once loaded, else why it cannot be (kept, so
    that later calls and `unavailable_reason` give the same answer without trying again)."""
    global _load_failure
    problem = unavailable_reason()
    if problem or is_loaded():
        return problem
    try:
        load()
    except ExtensionUnavailable as exc:
        _load_failure = f"cuBLAS extension unavailable: {exc}"
    return _load_failure


def clean() -> list[Path]:
    """Remove every cached build; returns what was removed."""
    root = cache_root() / "ext"
    removed = sorted(root.iterdir()) if root.is_dir() else []
    shutil.rmtree(root, ignore_errors=True)
    return removed
