"""What this machine offers, and the provenance every saved run carries."""

from __future__ import annotations

import ctypes
import importlib.metadata
import platform
import re
import shlex
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from gemmbench.backends.ext import loaded_library
from gemmbench.backends.mm_out_dtype import out_dtype_unavailable
from gemmbench.errors import UsageError
from gemmbench.records.provenance import Provenance
from gemmbench.timing.clocks import ClockWatch
from gemmbench.version import __version__

DEVICE_CHOICES = ("auto", "cuda", "cuda:N", "cpu")
_CUDA_INDEX = re.compile(r"^cuda:(\d+)$")
# cublasGetProperty's libraryPropertyType values (library_types.h).
_MAJOR_VERSION, _MINOR_VERSION, _PATCH_LEVEL = 0, 1, 2


def select_device(choice: str) -> torch.device:
    """auto, cpu, cuda (the current GPU) or cuda:N (GPU N of those torch sees)."""
    index = _CUDA_INDEX.match(choice)
    if choice not in DEVICE_CHOICES and not index:
        raise UsageError(f"unknown device '{choice}'", f"use one of: {', '.join(DEVICE_CHOICES)}")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            f"device {choice} was asked for, but torch sees no CUDA device", "give cpu or auto as the device"
        )
    if index and int(index.group(1)) >= torch.cuda.device_count():
        raise UsageError(
            f"device {choice}: torch sees {torch.cuda.device_count()} GPU(s)",
            f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}",
        )
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def cublas_versions() -> dict[str, str | None]:
    """Versions of the cuBLAS and cuBLASLt libraries torch actually loaded (call after a CUDA matmul)."""
    versions: dict[str, str | None] = {"cublas": None, "cublaslt": None}
    path = loaded_library("libcublas")
    if path:
        try:
            lib = ctypes.CDLL(path)
            parts = []
            for prop in (_MAJOR_VERSION, _MINOR_VERSION, _PATCH_LEVEL):
                value = ctypes.c_int()
                if lib.cublasGetProperty(prop, ctypes.byref(value)) != 0:
                    raise OSError("cublasGetProperty failed")
                parts.append(str(value.value))
            versions["cublas"] = ".".join(parts)
        except (OSError, AttributeError):
            pass
    path = loaded_library("libcublasLt")
    if path:
        try:
            lib = ctypes.CDLL(path)
            lib.cublasLtGetVersion.restype = ctypes.c_size_t
            # cublasLtGetVersion returns MAJOR * 10000 + MINOR * 100 + PATCH.
            code = lib.cublasLtGetVersion()
            versions["cublaslt"] = f"{code // 10000}.{code // 100 % 100}.{code % 100}"
        except (OSError, AttributeError):
            pass
    return versions


def driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
            return version.decode() if isinstance(version, bytes) else version
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - NVML is optional: missing package, library or driver
        pass
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return None
    match = re.search(r"Kernel Module\s+(\S+)", text)
    return match.group(1) if match else None


def device_facts(device: torch.device) -> dict:
    """Name, compute capability, memory and L2 of `device` (CPU: the processor), by their fields of Provenance."""
    if device.type != "cuda":
        return {
            "device_type": "cpu",
            "device_name": platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(),
        }
    props = torch.cuda.get_device_properties(device)
    # Initialise cuBLAS so that its library is loaded and its version can be read.
    a = torch.ones(8, 8, device=device, dtype=torch.bfloat16)
    torch.mm(a, a)
    torch.cuda.synchronize(device)
    return {
        "device_type": "cuda",
        "device_index": device.index if device.index is not None else torch.cuda.current_device(),
        "device_name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "arch": f"sm{props.major}{props.minor}",
        "sm_count": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "l2_cache_mb": round(getattr(props, "L2_cache_size", 0) / 1e6, 1),
        "driver": driver_version(),
        **cublas_versions(),
        **ClockWatch(device).provenance(),
    }


# Engine packages whose kernels a run may time (backends/engines.py), by distribution name, under the field of
# Provenance that records their version.
ENGINE_DISTRIBUTIONS = {"flashinfer": "flashinfer-python"}


def engine_versions() -> dict:
    """The version of each engine package installed here, by its field of Provenance (its import name)."""
    versions = {}
    for key, distribution in ENGINE_DISTRIBUTIONS.items():
        try:
            versions[key] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def collect_provenance(device: torch.device, argv: list[str] | None = None) -> Provenance:
    """What a saved run needs to be understood later, on another machine."""
    return Provenance.of(
        gemmbench=__version__,
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        **engine_versions(),
        **device_facts(device),
        hostname=socket.gethostname(),
        command=shlex.join(["gemmbench", *(sys.argv[1:] if argv is None else argv)]),
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def environment_facts(device: torch.device) -> dict:
    """What `gemmbench env` shows: the provenance a run would carry (less the command and its time),
    whether CUDA is there, and whether torch.mm(out_dtype=) works on `device`."""
    facts = collect_provenance(device).to_dict()
    for key in ("command", "started"):
        facts.pop(key)
    facts["cuda_available"] = device.type == "cuda"
    reason = out_dtype_unavailable(device.type)
    facts["mm_out_dtype"] = "works" if reason is None else f"unavailable: {reason}"
    return facts
