"""The user's routing data: safetensors and torch files the tests make, read end to end and refused clearly."""

import json
import struct

import pytest
import torch
from typer.testing import CliRunner

from gemmbench.cli import app
from gemmbench.errors import GemmbenchError
from gemmbench.measure.routing_data import load_activations, load_routing_data, load_weights

runner = CliRunner()
N, K, T = 64, 256, 128
CONFIG = """model = "Tiny"
[[gemm]]
name = "router"
role = "router"
n = 64
k = 256
in_dtype = "bf16"
out_dtype = "fp32"
top_k = 4
[gemm.routing]
scoring = "sigmoid"
bias = true
n_group = 4
topk_group = 2
normalize = true
scale = 2.5
"""
DTYPES = {torch.bfloat16: "BF16", torch.float32: "F32", torch.int32: "I32"}


def write_safetensors(path, tensors: dict[str, torch.Tensor]) -> None:
    """The safetensors layout: an 8-byte little-endian header size, the JSON header, the tensors' bytes."""
    header, blobs, offset = {}, [], 0
    for name, tensor in tensors.items():
        data = tensor.contiguous().view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


@pytest.fixture
def checkpoint(tmp_path):
    """A shard with two layers' routers (the lowest is the default) and an attention weight."""
    generator = torch.Generator().manual_seed(0)
    tensors = {
        f"model.layers.{layer}.mlp.gate.weight": (torch.randn(N, K, generator=generator) / K**0.5).bfloat16()
        for layer in (12, 3)
    }
    tensors["model.layers.3.mlp.gate.e_score_correction_bias"] = torch.randn(N, generator=generator) * 0.01
    tensors["model.layers.3.self_attn.q_proj.weight"] = torch.randn(8, K, generator=generator).bfloat16()
    tensors["model.norm.weight"] = torch.ones(K)
    path = tmp_path / "model-00001-of-00002.safetensors"
    write_safetensors(path, tensors)
    return path, tensors


def test_the_router_weight_of_the_lowest_layer_and_its_bias_are_found(checkpoint):
    path, tensors = checkpoint
    weight, bias = load_weights(path)
    assert weight.name == "model.layers.3.mlp.gate.weight" and torch.equal(weight.tensor, tensors[weight.name])
    assert bias.name == "model.layers.3.mlp.gate.e_score_correction_bias"
    named, none = load_weights(path, "model.layers.12.mlp.gate.weight")
    assert named.name.startswith("model.layers.12") and none is None  # layer 12's bias is not in this shard
    assert len(weight.describe()["sha256"]) == 64


def test_hidden_states_come_from_a_safetensors_or_a_torch_file(tmp_path):
    x = torch.randn(T, K).bfloat16()
    write_safetensors(tmp_path / "x.safetensors", {"hidden": x})
    torch.save({"hidden_states": x}, tmp_path / "x.pt")
    for name in ("x.safetensors", "x.pt"):
        assert torch.equal(load_activations(tmp_path / name).tensor, x)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"\x00\x01"), "shorter than its header"),
        (lambda p: p.write_bytes(struct.pack("<Q", 4) + b"nope"), "header is not JSON"),
        (lambda p: p.write_bytes(struct.pack("<Q", 1 << 40)), "header size"),
        (lambda p: write_safetensors(p, {"a.gate.weight": torch.zeros(4, 4, dtype=torch.int32)}), "not floating point"),
        (lambda p: write_safetensors(p, {"a.gate.weight": torch.zeros(4, 4).bfloat16(), "b": torch.zeros(2, 2)}), None),
        (
            lambda p: write_safetensors(p, {"x": torch.zeros(4), "y": torch.zeros(2, 2), "z": torch.zeros(3, 3)}),
            "no router weight",
        ),
    ],
)
def test_a_file_that_is_not_what_it_claims_is_one_clear_error(tmp_path, make, message):
    path = tmp_path / "w.safetensors"
    make(path)
    if message is None:  # a well-formed file loads
        assert load_weights(path)[0].name == "a.gate.weight"
        return
    with pytest.raises(GemmbenchError, match=message):
        load_weights(path)


def test_a_truncated_file_a_missing_tensor_and_a_mismatched_bias_are_refused(tmp_path, checkpoint):
    path, _ = checkpoint
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:20_000])  # inside the first tensor, layer 12's router
    with pytest.raises(GemmbenchError, match="truncated"):
        load_weights(truncated, "model.layers.12.mlp.gate.weight")
    with pytest.raises(GemmbenchError, match="no tensor 'nope'"):
        load_weights(path, "nope")
    with pytest.raises(
        GemmbenchError, match=r"'model.layers.3.self_attn.q_proj.weight' has shape \[8, 256\], not \[N\]"
    ):
        load_weights(path, bias_name="model.layers.3.self_attn.q_proj.weight")
    with pytest.raises(GemmbenchError, match="bias 'model.norm.weight' has 256 values for 64 experts"):
        load_weights(path, bias_name="model.norm.weight")
    with pytest.raises(GemmbenchError, match="not a .safetensors file"):
        load_weights(tmp_path / "w.bin")
    (tmp_path / "junk.pt").write_bytes(b"not a tensor file")
    with pytest.raises(GemmbenchError, match="neither a safetensors nor a torch"):
        load_activations(tmp_path / "junk.pt")


def test_synthetic_normal_hidden_states_are_no_data_and_outliers_are():
    assert load_routing_data(activations="normal") is None
    assert load_routing_data(activations="outliers").synthetic == "outliers"


def test_a_missing_hidden_states_file_names_the_synthetic_choices_too(tmp_path):
    with pytest.raises(GemmbenchError, match="outlier does not exist") as raised:
        load_routing_data(activations=str(tmp_path / "outlier"))
    assert "normal, outliers" in raised.value.fix


def test_a_sweep_routes_the_users_router_and_hidden_states_and_records_them(tmp_path, checkpoint):
    path, tensors = checkpoint
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    torch.save(torch.randn(T, K).bfloat16(), tmp_path / "x.pt")
    args = ["sweep", "--config", config, "--m", "16", "--backend", "upcast,linear_cast", "--device", "cpu"]
    data = ["--weights", path, "--activations", tmp_path / "x.pt", "--budget-ms", "1", "--no-save", "--json", "-"]
    result = runner.invoke(app, [str(a) for a in args + data], prog_name="gemmbench")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    rows = {row["backend"]: row for row in run["records"]}
    assert rows["upcast"]["routing_inputs"] == f"w {path.name}, x x.pt" and rows["upcast"]["topk_mismatch"] == 0.0
    assert rows["linear_cast"]["weight_l1_max"] > 0 and rows["linear_cast"]["routing_scoring"] == "sigmoid"
    recorded = run["provenance"]["routing_data"]
    assert recorded["weight"]["tensor"] == "model.layers.3.mlp.gate.weight" and recorded["bias"]["file"] == path.name
    assert recorded["activations"]["file"] == "x.pt" and len(recorded["activations"]["sha256"]) == 64


def test_a_bad_routing_file_is_one_error_line_before_any_work(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"garbage!garbage!")
    result = runner.invoke(
        app, ["sweep", "--shape", "8x16", "--m", "1", "--device", "cpu", "--weights", str(tmp_path / "w.safetensors")]
    )
    lines = result.stderr.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "not a safetensors file" in lines[0]


def test_the_timing_inputs_take_the_users_weight_and_hidden_states_where_they_fit(checkpoint, tmp_path):
    from gemmbench.spec.cases import Case

    path, tensors = checkpoint
    torch.save(torch.randn(3, K).bfloat16(), tmp_path / "x.pt")
    data = load_routing_data(path, activations=str(tmp_path / "x.pt"))
    fits = Case("Tiny", "router", "router", 8, N, K, top_k=4)
    inputs = data.gemm_inputs(fits, torch.device("cpu"), seed=0)
    assert torch.equal(inputs.w, tensors["model.layers.3.mlp.gate.weight"])
    hidden = data.activations.tensor
    assert torch.equal(inputs.x[:3], hidden) and torch.equal(inputs.x[3:6], hidden)  # 3 states, repeated to M = 8
    other = data.gemm_inputs(Case("Other", "router", "router", 8, 2 * N, 2 * K), torch.device("cpu"), seed=0)
    assert other.w.shape == (2 * N, 2 * K)  # a shape they do not fit: random inputs


@pytest.mark.parametrize(
    "selection, data, message",
    [
        (["--preset", "deepseek-v3"], "weights", "[64, 256] fits no GEMM of this sweep: none has its [N, K]"),
        (["--preset", "deepseek-v3"], "activations", "fits no GEMM of this sweep: none has its K of 256x7168 (N x K)"),
        (["--shape", "64x256"], "outliers", "--activations outliers chooses the routing check's hidden states, and no"),
        (["--shape", "64x256"], "weights", None),  # a plain GEMM of the weight's shape: timed on it
    ],
)
def test_routing_data_that_no_row_would_use_is_an_error_not_silence(tmp_path, checkpoint, selection, data, message):
    path, _ = checkpoint
    torch.save(torch.randn(T, K).bfloat16(), tmp_path / "x.pt")
    given = {"weights": ["--weights", path], "activations": ["--activations", tmp_path / "x.pt"]}
    given["outliers"] = ["--activations", "outliers"]
    args = ["sweep", *selection, "--m", "1", "-b", "upcast", "--device", "cpu", "--no-save", *given[data]]
    result = runner.invoke(app, [str(a) for a in args], prog_name="gemmbench")
    if message is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1 and message in result.stderr, result.output


def test_an_activations_tensor_without_an_activations_file_is_a_usage_error():
    args = ["sweep", "--shape", "8x16", "--m", "1", "--device", "cpu", "--activations-tensor", "hidden"]
    result = runner.invoke(app, args, prog_name="gemmbench")
    assert result.exit_code == 2 and "--activations-tensor names a tensor of an --activations file" in result.stderr
