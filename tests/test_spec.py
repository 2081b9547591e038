import re

import pytest

from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.records.record import OK, Record
from gemmbench.spec.parse import CPU_DEFAULT_M, DEFAULT_M, build_cases, parse_m_list, parse_shape
from gemmbench.spec.presets import load_config, load_preset, preset_names, select_gemms

REQUIRED_PRESETS = {
    "deepseek-v3",
    "deepseek-v3.2",
    "deepseek-v4-pro",
    "deepseek-v4-flash",
    "kimi-k2",
    "glm-5",
    "qwen3-30b-a3b",
    "qwen3-235b-a22b",
}


def test_every_required_preset_is_shipped_and_loads():
    assert REQUIRED_PRESETS <= set(preset_names())
    for name in preset_names():
        preset = load_preset(name)
        assert preset.gemms and all(g.in_dtype == "bf16" and g.out_dtype == "fp32" for g in preset.gemms)


@pytest.mark.parametrize(
    "preset, gemms",
    [
        ("deepseek-v3", {("router", 256, 7168)}),
        ("kimi-k2", {("router", 384, 7168)}),
        ("glm-5", {("router", 256, 6144)}),
        ("qwen3-30b-a3b", {("router", 128, 2048)}),
        ("qwen3-235b-a22b", {("router", 128, 4096)}),
        ("deepseek-v3.2", {("router", 256, 7168), ("attention", 64, 7168)}),
        ("deepseek-v4-pro", {("router", 384, 7168)} | {("attention", n, 7168) for n in (2048, 1024, 512, 64)}),
        ("deepseek-v4-flash", {("router", 256, 4096)} | {("attention", n, 4096) for n in (2048, 1024, 512, 64)}),
    ],
)
def test_presets_hold_the_shapes_of_design_section_2(preset, gemms):
    assert {(g.role, g.n, g.k) for g in load_preset(preset).gemms} == gemms


def test_role_filter_keeps_only_that_role():
    gemms = select_gemms(["deepseek-v4-pro"], [], ["attention"])
    assert len(gemms) == 4 and {g.role for g in gemms} == {"attention"}


def test_shape_parses_m_n_k():
    case = parse_shape("16x256x7168")
    assert (case.m, case.n, case.k, case.model) == (16, 256, 7168, "custom")


def test_shape_without_m_is_a_gemm_run_at_the_m_values():
    gemm = parse_shape("256x7168")
    assert (gemm.n, gemm.k, gemm.model, gemm.name) == (256, 7168, "custom", "256x7168")
    assert gemm.case(4).m == 4


@pytest.mark.parametrize("text", ["12x", "0x5x5", "-1x2x3", "axbxc", "0x2", "1x2x3x4", ""])
def test_malformed_shapes_are_usage_errors(text):
    with pytest.raises(UsageError, match="malformed shape"):
        parse_shape(text)


@pytest.mark.parametrize(
    "text, values",
    [
        ("1,8,64", (1, 8, 64)),
        ("64,8,8,1", (1, 8, 64)),
        ("1:16384:x2", (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)),
        ("1:16:+1,32:16384:x2", DEFAULT_M),
        ("8:32:+8", (8, 16, 24, 32)),
        ("1,4:16:x2", (1, 4, 8, 16)),
        ("3:10:x2", (3, 6)),
        ("1:16", tuple(range(1, 17))),  # START:STOP: every M
        ("1:4,8", (1, 2, 3, 4, 8)),
    ],
)
def test_m_lists_and_ranges(text, values):
    assert parse_m_list(text) == values


def test_default_m_is_every_decode_batch_then_powers_of_two():
    # 1..16: the decode batches, where a router's first tier runs (speculative decoding makes 3, 6, 12 common)
    assert DEFAULT_M[:16] == tuple(range(1, 17))
    assert DEFAULT_M[16:] == tuple(2**e for e in range(5, 15))
    assert CPU_DEFAULT_M == (1, 8, 64)


@pytest.mark.parametrize(
    "text", ["", "0", "1,,2", "a", "-4", "16:1", "1:", "16:1:x2", "1:16:x1", "1:16:*2", "1:16:x", "1:100000:+1"]
)
def test_bad_m_lists_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_m_list(text)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(UsageError, match="deepseek-v3"):
        load_preset("deepseek-v9")


def test_unknown_role_is_a_usage_error():
    with pytest.raises(UsageError, match="role"):
        select_gemms(["deepseek-v3"], [], ["mlp"])


def test_role_with_no_match_says_so():
    with pytest.raises(UsageError, match="no GEMM of role attention"):
        select_gemms(["deepseek-v3"], [], ["attention"])


GOOD_TOML = """
model = "Mine"
[[gemm]]
name = "router"
role = "router"
n = 64
k = 128
in_dtype = "bf16"
out_dtype = "fp32"
"""


def test_user_config_loads(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(GOOD_TOML)
    preset = load_config(path)
    assert (preset.model, preset.gemms[0].n, preset.gemms[0].k) == ("Mine", 64, 128)


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD_TOML.replace("n = 64\n", ""), "missing the key 'n'"),
        (GOOD_TOML.replace('model = "Mine"\n', ""), "missing the key 'model'"),
        (GOOD_TOML.replace('role = "router"', 'role = "mlp"'), "role 'mlp'"),
        (GOOD_TOML.replace("n = 64", 'n = "64"'), "'n' = '64', not an integer"),
        (GOOD_TOML.replace("k = 128", "k = 0"), "k = 0"),
        (GOOD_TOML.replace('out_dtype = "fp32"', 'out_dtype = "fp64"'), "out_dtype = 'fp64'"),
        ("model = [", "not valid TOML"),
        ('model = "x"\ngemm = []', "no \\[\\[gemm\\]\\] entries"),
    ],
)
def test_bad_config_names_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(GemmbenchError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(GemmbenchError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_cases_cover_every_gemm_at_every_m_then_explicit_shapes():
    gemms = select_gemms(["deepseek-v3.2"], [], [])
    cases = build_cases(gemms, [parse_shape("2x3x4")], (1, 16))
    assert [(c.gemm, c.m) for c in cases] == [
        ("router", 1),
        ("router", 16),
        ("indexer.weights_proj", 1),
        ("indexer.weights_proj", 16),
        ("3x4", 2),
    ]


def test_flops_and_bytes():
    case = parse_shape("2x3x4")
    assert case.flops == 2 * 2 * 3 * 4
    assert case.bytes_moved == (2 * 4 + 3 * 4) * 2 + 2 * 3 * 4


@pytest.mark.parametrize(
    "extra, message",
    [
        ("topk = 8\n", "unknown key 'topk' — did you mean 'top_k'?"),
        ("top_k = 9\n", "top_k = 9, more than its n = 8 experts"),
        ('source = "x"\n', "unknown key 'source'"),
    ],
)
def test_config_mistakes_are_named(tmp_path, extra, message):
    path = tmp_path / "mine.toml"
    body = 'name = "r"\nrole = "router"\nn = 8\nk = 16\nin_dtype = "bf16"\nout_dtype = "fp32"\n'
    path.write_text(f'model = "m"\n[[gemm]]\n{body}{extra}')
    with pytest.raises(GemmbenchError, match=message):
        load_config(path)


def test_a_dtype_pair_no_backend_runs_is_refused(tmp_path):
    path = tmp_path / "fp16.toml"
    path.write_text(
        'model = "m"\n[[gemm]]\nname = "r"\nrole = "router"\nn = 8\nk = 16\nin_dtype = "fp16"\nout_dtype = "fp32"\n'
    )
    with pytest.raises(GemmbenchError, match="fp16 -> fp32, which no backend runs"):
        load_config(path)


def test_a_folder_is_not_a_config(tmp_path):
    with pytest.raises(GemmbenchError, match="is a folder, not a config file"):
        load_config(tmp_path)


def test_glm5_routes_8_of_256():
    (router,) = load_preset("glm-5").gemms
    assert (router.n, router.top_k) == (256, 8)


# Calls per forward pass of each shipped GEMM with a cited count (the # source: comments of configs/*.toml):
# a router runs once per MoE layer, the DeepSeek-V4 compressor and indexer GEMMs once per layer of their
# compression ratio, DeepSeek-V3.2's indexer once per layer.
PER_FORWARD = {
    ("deepseek-v3", "router"): 58,
    ("deepseek-v3.2", "router"): 58,
    ("deepseek-v3.2", "indexer.weights_proj"): 61,
    ("kimi-k2", "router"): 60,
    ("glm-5", "router"): 75,
    ("qwen3-30b-a3b", "router"): 48,
    ("qwen3-235b-a22b", "router"): 94,
    ("deepseek-v4-pro", "router"): 61,
    ("deepseek-v4-pro", "compressor.fused_wkv_wgate.ratio4"): 30,
    ("deepseek-v4-pro", "compressor.fused_wkv_wgate.ratio128"): 31,
    ("deepseek-v4-pro", "indexer.compressor"): 30,
    ("deepseek-v4-pro", "indexer.weights_proj"): 30,
    ("deepseek-v4-flash", "router"): 43,
    ("deepseek-v4-flash", "compressor.fused_wkv_wgate.ratio4"): 21,
    ("deepseek-v4-flash", "compressor.fused_wkv_wgate.ratio128"): 20,
    ("deepseek-v4-flash", "indexer.compressor"): 21,
    ("deepseek-v4-flash", "indexer.weights_proj"): 21,
}


def test_shipped_presets_carry_their_calls_per_forward_pass():
    shipped = {(name, g.name): g.per_forward for name in REQUIRED_PRESETS for g in load_preset(name).gemms}
    assert shipped == PER_FORWARD


def test_every_shipped_router_knows_its_moe_layers():
    for name in preset_names():
        for gemm in load_preset(name).gemms:
            if gemm.role == "router":
                assert gemm.per_forward, f"{name}: its router has no per_forward"


def test_the_case_and_its_records_carry_per_forward():
    gemm = select_gemms(["deepseek-v3"], [], [])[0]
    cases = build_cases([gemm], [], (1, 16))
    assert [c.per_forward for c in cases] == [58, 58]
    record = Record.for_case(cases[0], "fake", OK)
    assert record.per_forward == 58 and record.case == cases[0]


def test_shapes_have_no_per_forward():
    assert parse_shape("16x256x7168").per_forward is None
    assert parse_shape("256x7168").case(4).per_forward is None


def test_user_config_reads_per_forward(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(GOOD_TOML + "per_forward = 12\n")
    assert load_config(path).gemms[0].per_forward == 12
    path.write_text(GOOD_TOML)
    assert load_config(path).gemms[0].per_forward is None


@pytest.mark.parametrize("value, shown", [("0", "0"), ("-1", "-1"), ('"x"', "'x'"), ("1.5", "1.5"), ("true", "True")])
def test_a_bad_per_forward_names_the_file_and_the_key(tmp_path, value, shown):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD_TOML + f"per_forward = {value}\n")
    with pytest.raises(GemmbenchError, match=re.escape(f"[[gemm]] 'router' has per_forward = {shown}")) as info:
        load_config(path)
    assert str(path) in info.value.what
    assert info.value.fix.startswith("make 'per_forward' a positive integer")
