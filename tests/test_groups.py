"""Groups on streams without a GPU: presets, records on the made-up device (fakes.py), skipped rows, the run
file, and the commands that read group runs. GPU tests: test_gpu.py."""

import csv
import json

import pytest
import torch
from fakes import Fake, FakeBench, gemm_us
from typer.testing import CliRunner

from gemmbench.backends import REGISTRY
from gemmbench.cli import app
from gemmbench.errors import GemmbenchError
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.groups import measure_groups
from gemmbench.records import OK, SKIPPED
from gemmbench.records.runfile import load_run
from gemmbench.spec.presets import load_config, load_preset
from gemmbench.timing.profile import overlap_us

CPU = torch.device("cpu")
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="gemmbench")


def test_the_v4_presets_carry_their_attention_group():
    for preset, heavy_n in (("deepseek-v4-pro", 2048), ("deepseek-v4-flash", 1536)):
        (group,) = load_preset(preset).groups
        heavy, *light = group.members
        assert (heavy.gemm.name, heavy.gemm.n, heavy.gemm.out_dtype, heavy.stream, heavy.light) == (
            "fused_wqa_wkv",
            heavy_n,
            "bf16",
            "default",
            False,
        )
        assert [(m.gemm.n, m.stream, m.light) for m in light] == [
            (2048, "aux0", True),
            (64, "aux1", True),
            (512, "aux2", True),
        ]


@pytest.mark.parametrize(
    "members, message",
    [
        ('[{ gemm = "r", stream = "aux0" }]', "has 1 member"),
        ('[{ gemm = "r", stream = "aux0" }, { gemm = "nope", stream = "default" }]', "names a GEMM 'nope'"),
        ('[{ gemm = "r", stream = "side" }, { gemm = "r", stream = "default" }]', "has stream 'side'"),
        (
            '[{ gemm = "r", stream = "aux0" }, { gemm = "h", n = 8, k = 32, in_dtype = "bf16", out_dtype = "bf16", '
            'stream = "default" }]',
            "mixes hidden sizes",
        ),
    ],
)
def test_group_mistakes_are_named(tmp_path, members, message):
    path = tmp_path / "g.toml"
    path.write_text(
        'model = "m"\n[[gemm]]\nname = "r"\nrole = "attention"\nn = 8\nk = 16\nin_dtype = "bf16"\n'
        f'out_dtype = "fp32"\n[[group]]\nname = "g"\nmembers = {members}\n'
    )
    with pytest.raises(GemmbenchError, match=message):
        load_config(path)


def test_the_fake_bench_gives_a_group_record_with_its_figures():
    (group,) = load_preset("deepseek-v4-pro").groups
    (record,) = measure_groups([group], (16,), [Fake()], FakeBench(CPU, MeasureOptions()))
    alone = {m.gemm: m.device_us for m in record.members}
    assert alone == {member.gemm.name: gemm_us(member.gemm.case(16)) for member in group.members}
    assert record.status == OK and record.serial_device.median_us == pytest.approx(sum(alone.values()))
    assert record.parallel_device.median_us == pytest.approx(max(alone.values()))  # one member per stream
    assert record.speedup == pytest.approx(record.serial_device.median_us / record.parallel_device.median_us)
    assert record.overlap_efficiency == pytest.approx(record.speedup)
    assert record.critical_path.startswith("aux0: compressor") or record.critical_path.startswith("default:")


def test_members_that_cannot_be_timed_alone_leave_the_group_its_times():
    class NoMembersAlone(FakeBench):
        def device_time(self, unit, upper_bound_us, rule=None):
            raise torch.OutOfMemoryError("CUDA out of memory")

    (group,) = load_preset("deepseek-v4-pro").groups
    (record,) = measure_groups([group], (16,), [Fake()], NoMembersAlone(CPU, MeasureOptions()))
    assert record.status == OK and record.parallel_device.median_us > 0 and record.members is None
    assert "members alone not timed: out of memory" in record.reason


def test_without_a_gpu_a_real_backend_is_a_skipped_row_with_the_reason():
    (group,) = load_preset("deepseek-v4-flash").groups
    (record,) = measure_groups([group], (1,), [REGISTRY["upcast"]], Bench(CPU, MeasureOptions()))
    assert (record.status, record.reason) == (SKIPPED, "CUDA streams need a CUDA device")


def test_a_group_table_names_its_members_only_where_a_row_was_timed():
    args = ("--preset", "deepseek-v4-flash", "-b", "upcast", "--m", "1", "--device", "cpu", "--no-save")
    result = invoke("group", *args, "--allow-empty")
    assert result.exit_code == 0, result.output
    assert "DeepSeek-V4-Flash attention_inputs\n" in result.stdout  # no dangling colon: nothing was timed


def test_overlap_counts_time_with_two_or_more_streams_busy():
    kernels = [(7, 0.0, 10.0), (9, 4.0, 6.0), (9, 8.0, 14.0), (11, 20.0, 21.0)]
    assert overlap_us(kernels) == pytest.approx(2.0 + 2.0)  # 4-6 and 8-10


def test_the_group_command_saves_a_run_the_other_commands_read(tmp_path, fake_device):
    result = invoke(
        "group",
        "--preset",
        "deepseek-v4-pro",
        "-b",
        "fake,mm_out_dtype",  # mm_out_dtype: skipped where torch has no CPU kernel for it
        "--m",
        "1,16",
        "--device",
        "cpu",
        "--out-dir",
        tmp_path,
        "--md",
        "--csv",
        tmp_path / "g.csv",
    )
    assert result.exit_code == 0, result.output
    assert "| DeepSeek-V4-Pro attention_inputs | 1 | fake |" in result.stdout
    (path,) = tmp_path.glob("*.json")
    run = load_run(path)
    assert len(run.groups) == 4 and run.complete and not run.records
    rows = list(csv.DictReader((tmp_path / "g.csv").open()))
    assert len(rows) == 4 and "fused_wqa_wkv@default=" in rows[0]["members"]
    shown = invoke("show", path)
    assert shown.exit_code == 0 and "light: fake" in shown.stdout
    advice = invoke("recommend", path, "--json")
    (item,) = json.loads(advice.stdout)
    assert item["streams_pay_up_to"] == 16 and {c["backend"] for c in item["choices"]} == {"fake"}
    compared = invoke("compare", path, path, "--md")
    assert compared.exit_code == 0 and "| DeepSeek-V4-Pro attention_inputs | 16 | fake |" in compared.stdout
    plotted = invoke("plot", path, "-o", tmp_path / "g.png")
    assert plotted.exit_code == 0 and (tmp_path / "g.png").stat().st_size > 0


def test_the_group_command_needs_a_preset_with_groups(fake_device):
    result = invoke("group", "-b", "fake", "--device", "cpu", "--no-save")
    assert result.exit_code == 2 and "deepseek-v4-pro" in result.stderr
    no_groups = invoke("group", "--preset", "deepseek-v3", "-b", "fake", "--device", "cpu", "--no-save")
    assert no_groups.exit_code == 2 and "no [[group]]" in no_groups.stderr


def test_the_advice_names_the_m_past_a_gap_where_the_streams_pay_again():
    from gemmbench.analysis.group_advice import GroupAdvice, GroupChoice
    from gemmbench.output.groups import advice_markdown, advice_summary

    speedups = {512: 1.11, 1024: 0.97, 2048: 1.034, 4096: 1.025, 16384: 1.049}
    choices = [GroupChoice(m, "mm_out_dtype", 100.0, 100.0 * s, s, s > 1.03) for m, s in speedups.items()]
    advice = GroupAdvice("DeepSeek-V4-Flash", "attention_inputs", choices)
    assert advice.streams_pay_up_to == 512 and advice.streams_also_pay_at == [2048, 16384]
    assert "the auxiliary streams pay up to M = 512, and again at M = 2048, 16384;" in advice_summary(advice)
    rows = advice_markdown([advice])
    assert "| 2048 | mm_out_dtype | 100 µs | 103 µs | 1.034x | yes |" in rows
    assert "| 4096 | mm_out_dtype | 100 µs | 102 µs | 1.025x | no |" in rows  # 1.03x both, read apart
    never_first = GroupAdvice("m", "g", choices[1:])
    assert never_first.streams_pay_up_to is None
    assert "the auxiliary streams do not pay at the smallest M, but at M = 2048, 16384;" in advice_summary(never_first)


def test_a_backend_that_writes_into_a_members_input_is_an_error_row_that_says_so():
    class Scribbler(Fake):
        name = "scribbler"

        def prepare(self, case, inputs):
            compute = super().prepare(case, inputs)

            def call():
                compute()
                inputs.x.zero_()
                return inputs.out

            return call

    (group,) = load_preset("deepseek-v4-pro").groups
    (record,) = measure_groups([group], (16,), [Scribbler()], FakeBench(CPU, MeasureOptions()))
    assert record.status == "error" and "wrote into its input x: a backend must only write out" in record.reason
