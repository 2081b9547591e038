"""The user's own routing data: a router weight (and its correction bias) from a checkpoint's safetensors
file, hidden states from a safetensors or torch file; every problem with a file is one GemmbenchError.

safetensors is read here directly (an 8-byte little-endian header size, a JSON header naming each
tensor's dtype, shape and byte range, then the bytes), so that no package beyond torch is needed and
only the tensors used are read from a shard of several GB.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.measure.routing import NORMAL, SYNTHETIC, RoutingInputs, synthetic_inputs
from gemmbench.spec.cases import Case
from gemmbench.timing.inputs import GemmInputs, make_inputs

SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
FLOATING = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
# A safetensors header larger than this is not one (the format caps it at 100 MB).
MAX_HEADER_BYTES = 100_000_000
# The router weight's name in the presets' checkpoints: `model.layers.N.mlp.gate.weight` (DeepSeek-V3,
# Kimi-K2, GLM, Qwen3-MoE in Hugging Face format) or `layers.N.ffn.gate.weight` (DeepSeek's inference
# format); its bias beside it, `...gate.e_score_correction_bias` or `...gate.bias`.
ROUTER_WEIGHT = re.compile(r"(^|\.)gate\.weight$")
BIAS_NAMES = ("e_score_correction_bias", "bias")
LAYER_NUMBER = re.compile(r"layers\.(\d+)\.")
CHECK_FILE = "check the file, or name the tensor"


@dataclass(frozen=True)
class LoadedTensor:
    """A tensor of a file, and where it came from."""

    file: Path
    name: str
    tensor: torch.Tensor

    def describe(self) -> dict:
        digest = hashlib.sha256(self.tensor.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()
        return {"file": self.file.name, "tensor": self.name, "shape": list(self.tensor.shape), "sha256": digest}


@dataclass(frozen=True)
class RoutingData:
    """The routing check's inputs where the user gave them; a case whose shape they do not fit is checked on
    synthetic inputs (`synthetic`: the hidden states' distribution, NORMAL or OUTLIERS)."""

    weight: LoadedTensor | None = None  # [N, K]
    bias: LoadedTensor | None = None  # [N]
    activations: LoadedTensor | None = None  # [T, K]
    synthetic: str = NORMAL

    def describe(self) -> dict:
        """What the run records of the data: every file, tensor name and hash, and the synthetic kind."""
        given = {
            key: t.describe()
            for key, t in (("weight", self.weight), ("bias", self.bias), ("activations", self.activations))
            if t
        }
        return {**given, "synthetic_hidden_states": self.synthetic}

    def fits(self, case: Case) -> tuple[bool, bool]:
        """Whether the weight, and the activations, fit `case`'s shape."""
        weight = self.weight is not None and tuple(self.weight.tensor.shape) == (case.n, case.k)
        activations = self.activations is not None and self.activations.tensor.shape[1] == case.k
        return weight, activations

    def unused(self, cases: list[Case]) -> tuple[str, str] | None:
        """What of the data no case of a sweep would use, and how to fix it; None where every part is used.
        A weight, or activations, are used where they fit a case's shape (its timing inputs, and a routed
        case's check); a synthetic distribution where a case is routed (a router GEMM with top_k). A row's
        routing_inputs says what it used; data that no row uses is a mistake to say, not to skip."""
        shapes = ", ".join(dict.fromkeys(f"{case.n}x{case.k}" for case in cases))
        for given, fits in ((self.weight, 0), (self.activations, 1)):
            if given is not None and not any(self.fits(case)[fits] for case in cases):
                tensor = f"{given.file.name}'s '{given.name}' {list(given.tensor.shape)}"
                wanted = f"[N, K] of {shapes}" if fits == 0 else f"K of {shapes} (N x K)"
                return f"{tensor} fits no GEMM of this sweep: none has its {wanted}", "give the sweep's GEMMs' data"
        if self.weight is None and self.activations is None and not any(case.routed for case in cases):
            what = f"--activations {self.synthetic} chooses the routing check's hidden states"
            return f"{what}, and no GEMM of this sweep is routed (a router with top_k)", "drop it, or sweep a router"
        return None

    def inputs_for(self, case: Case, tokens: int, device: torch.device, seed: int) -> RoutingInputs:
        """The check's inputs for `case`: the file's tensors where they fit its shape, synthetic ones elsewhere."""
        synthetic = synthetic_inputs(case, tokens, device, seed, self.synthetic)
        weight_fits, activations_fit = self.fits(case)
        dtype = synthetic.x.dtype
        w = self.weight.tensor.to(device, dtype) if weight_fits else synthetic.w
        bias = self.bias.tensor.to(device, torch.float32) if weight_fits and self.bias else synthetic.bias
        x = self.activations.tensor.to(device, dtype) if activations_fit else synthetic.x
        return RoutingInputs(x, w, bias)

    def gemm_inputs(self, case: Case, device: torch.device, seed: int) -> GemmInputs:
        """A set of the timing inputs of `case`: random ones (make_inputs), with the file's router weight as
        w and its first M hidden states as x (repeated where it has fewer) where they fit the shape."""
        inputs = make_inputs(case, device, seed)
        weight_fits, activations_fit = self.fits(case)
        if weight_fits:
            inputs.w.copy_(self.weight.tensor)
        if activations_fit:
            rows = self.activations.tensor
            inputs.x.copy_(rows.repeat(math.ceil(case.m / rows.shape[0]), 1)[: case.m])
        return inputs

    def label(self, case: Case) -> str:
        """What a row's routing check computed on, in a few words."""
        weight_fits, activations_fit = self.fits(case)
        w = f"w {self.weight.file.name}" if weight_fits else "w synthetic"
        x = f"x {self.activations.file.name}" if activations_fit else f"x synthetic {self.synthetic}"
        return f"{w}, {x}"


def safetensors_header(path: Path) -> tuple[dict[str, dict], int]:
    """The header of a safetensors file (each tensor's dtype, shape and data offsets, by name) and where
    its data starts."""
    try:
        with path.open("rb") as handle:
            size_bytes = handle.read(8)
            if len(size_bytes) < 8:
                raise GemmbenchError(f"{path} is not a safetensors file (shorter than its header)", CHECK_FILE)
            (size,) = struct.unpack("<Q", size_bytes)
            if size > MAX_HEADER_BYTES:
                raise GemmbenchError(f"{path} is not a safetensors file (its header size reads {size})", CHECK_FILE)
            header = json.loads(handle.read(size))
    except FileNotFoundError as exc:
        raise GemmbenchError(f"{path} does not exist", "check the path") from exc
    except OSError as exc:
        raise GemmbenchError(f"cannot read {path}: {exc.strerror or exc}", "check the path") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GemmbenchError(f"{path} is not a safetensors file (its header is not JSON)", CHECK_FILE) from exc
    if not isinstance(header, dict) or not all(isinstance(e, dict) for e in header.values()):
        raise GemmbenchError(f"{path} is not a safetensors file (its header is not a table of tensors)", CHECK_FILE)
    header.pop("__metadata__", None)
    return header, 8 + size


def read_safetensor(path: Path, name: str) -> torch.Tensor:
    """One tensor of a safetensors file, read on its own."""
    header, data_start = safetensors_header(path)
    if name not in header:
        some = ", ".join(sorted(header)[:3])
        raise GemmbenchError(f"{path} has no tensor '{name}'", f"name one of its {len(header)} tensors, e.g. {some}")
    entry = header[name]
    try:
        dtype = SAFETENSORS_DTYPES[entry["dtype"]]
        shape = [int(d) for d in entry["shape"]]
        begin, end = (int(o) for o in entry["data_offsets"])
    except (KeyError, TypeError, ValueError) as exc:
        raise GemmbenchError(
            f"{path}: tensor '{name}' has a malformed or unsupported entry {entry}", CHECK_FILE
        ) from exc
    expected = dtype.itemsize * math.prod(shape)
    if end - begin != expected:
        raise GemmbenchError(
            f"{path}: tensor '{name}' holds {end - begin} bytes, not the {expected} its shape needs", CHECK_FILE
        )
    with path.open("rb") as handle:
        handle.seek(data_start + begin)
        data = handle.read(expected)
    if len(data) != expected:
        raise GemmbenchError(f"{path} ends inside tensor '{name}' (truncated?)", "copy the file again")
    return (
        torch.frombuffer(bytearray(data), dtype=dtype).reshape(shape) if expected else torch.empty(shape, dtype=dtype)
    )


def router_weight_name(path: Path, names: dict[str, dict]) -> str:
    """The router weight of a checkpoint file: the `gate.weight` of its lowest layer, or its only 2-D tensor."""
    gates = [name for name, entry in names.items() if ROUTER_WEIGHT.search(name) and len(entry.get("shape", ())) == 2]
    if not gates:
        matrices = [name for name, entry in names.items() if len(entry.get("shape", ())) == 2]
        if len(matrices) == 1:
            return matrices[0]
        raise GemmbenchError(
            f"{path} has no router weight ('...gate.weight') and {len(matrices)} 2-D tensors",
            "name the router weight with --weight-tensor",
        )
    return min(gates, key=lambda name: (int(m.group(1)) if (m := LAYER_NUMBER.search(name)) else -1, name))


def load_weights(
    path: Path, weight_name: str | None = None, bias_name: str | None = None
) -> tuple[LoadedTensor, LoadedTensor | None]:
    """The router weight [N, K] of a safetensors file and its bias [N] where the file has one."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise GemmbenchError(f"--weights {path} is not a .safetensors file", "give a checkpoint's .safetensors shard")
    names, _ = safetensors_header(path)
    weight_name = weight_name or router_weight_name(path, names)
    weight = _floating(path, weight_name, read_safetensor(path, weight_name), "[N, K]")
    if bias_name is None:
        stem = weight_name.removesuffix("weight")
        bias_name = next((stem + b for b in BIAS_NAMES if stem + b in names and stem + b != weight_name), None)
    bias = None
    if bias_name is not None:
        bias = _floating(path, bias_name, read_safetensor(path, bias_name), "[N]")
        if bias.shape[0] != weight.shape[0]:
            raise GemmbenchError(
                f"{path}: bias '{bias_name}' has {bias.shape[0]} values for {weight.shape[0]} experts",
                "name the bias of this router with --bias-tensor",
            )
    return LoadedTensor(path, weight_name, weight), None if bias is None else LoadedTensor(path, bias_name, bias)


def load_activations(path: Path, name: str | None = None) -> LoadedTensor:
    """Hidden states [T, K] from a safetensors file or a torch file (a tensor, or a dict of them)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        names, _ = safetensors_header(path)
        if name is None:
            matrices = [n for n, entry in names.items() if len(entry.get("shape", ())) == 2]
            if len(matrices) != 1:
                raise GemmbenchError(
                    f"{path} has {len(matrices)} 2-D tensors", "name the hidden states with --activations-tensor"
                )
            name = matrices[0]
        return LoadedTensor(path, name, _floating(path, name, read_safetensor(path, name), "[T, K]"))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise GemmbenchError(
            f"--activations {path} does not exist", f"check the path, or give one of {', '.join(SYNTHETIC)}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for a file that is not a tensor file
        raise GemmbenchError(
            f"{path} is neither a safetensors nor a torch tensor file ({type(exc).__name__})", CHECK_FILE
        ) from exc
    if isinstance(loaded, dict):
        tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        if name is None and len(tensors) != 1:
            raise GemmbenchError(
                f"{path} holds {len(tensors)} tensors", "name the hidden states with --activations-tensor"
            )
        name = name or next(iter(tensors))
        if name not in tensors:
            raise GemmbenchError(f"{path} has no tensor '{name}'", f"name one of: {', '.join(sorted(tensors))}")
        loaded = tensors[name]
    if not isinstance(loaded, torch.Tensor):
        raise GemmbenchError(
            f"{path} holds a {type(loaded).__name__}, not a tensor", "save the hidden states as a tensor [T, K]"
        )
    return LoadedTensor(path, name or "(the file's tensor)", _floating(path, name or "tensor", loaded, "[T, K]"))


def _floating(path: Path, name: str, tensor: torch.Tensor, wanted: str) -> torch.Tensor:
    """`tensor`, checked: floating point, finite, of the shape `wanted` names ("[N, K]", "[N]", "[T, K]")."""
    if tensor.dtype not in FLOATING:
        raise GemmbenchError(f"{path}: '{name}' is {tensor.dtype}, not floating point", "give the model's own tensor")
    if tensor.dim() != wanted.count(",") + 1 or 0 in tensor.shape:
        raise GemmbenchError(f"{path}: '{name}' has shape {list(tensor.shape)}, not {wanted}", CHECK_FILE)
    if not torch.isfinite(tensor).all():
        raise GemmbenchError(f"{path}: '{name}' holds NaN or infinite values", CHECK_FILE)
    return tensor


def load_routing_data(
    weights: str | Path | None = None,
    weight_tensor: str | None = None,
    bias_tensor: str | None = None,
    activations: str | Path | None = None,
    activations_tensor: str | None = None,
) -> RoutingData | None:
    """The routing data the options name, or None where they name none (synthetic N(0, 1) hidden states).
    `activations` is a file, or the name of a synthetic distribution (normal, outliers)."""
    weights, activations = weights and Path(weights), activations and str(activations)
    weight, bias = load_weights(weights, weight_tensor, bias_tensor) if weights else (None, None)
    if weights is None and (weight_tensor or bias_tensor):
        raise UsageError("--weight-tensor/--bias-tensor name tensors of a --weights file", "give --weights FILE")
    if activations_tensor and (activations is None or activations in SYNTHETIC):
        raise UsageError("--activations-tensor names a tensor of an --activations file", "give --activations FILE")
    synthetic, loaded = NORMAL, None
    if activations in SYNTHETIC:
        synthetic = activations
    elif activations:
        loaded = load_activations(Path(activations), activations_tensor)
    if weight is None and loaded is None and synthetic == NORMAL:
        return None
    return RoutingData(weight, bias, loaded, synthetic)
