"""The answers from saved runs in an 80-column terminal: every name and value whole (no cell cut short with
`…`), pinned by snapshots; and in wide terminals, the wide layouts as they were before the narrow ones.

A deliberate change to an output: run `UPDATE_SNAPSHOTS=1 python -m pytest tests/test_narrow.py`, then
review the diff of tests/snapshots/.
"""

import pytest
from test_snapshots import FIXTURES, NARROW_TERMINAL, check_snapshot
from typer.testing import CliRunner

from gemmbench.cli import app
from gemmbench.cli.app import out_console
from gemmbench.records import OK, ClockSummary, Provenance, Record, Run
from gemmbench.records.provenance import FleetProvenance
from gemmbench.records.runfile import run_to_json
from gemmbench.records.timers import GRAPH_TIMER, TimerSummary
from gemmbench.spec.cases import Case

# What rich writes where it cuts a cell short.
CUT = "…"
# A common wide terminal's width, at which the answers print their wide layouts.
WIDE_TERMINAL = 120
# Wide enough for recommend's table with what each choice saves in a column of its own (109 and 99 columns
# for the two runs below at their natural widths).
WIDER_TERMINAL = 160
# Wider than the narrow terminal, narrower than the V4-Flash run's recommend table (99 columns).
BETWEEN_TERMINAL = 90
# Wide enough for the fleet table and the presets table of one column per field.
WIDEST_TERMINAL = 200

COLD_A = FIXTURES / "h200_deepseek_v3_cold_a.json"
COLD_B = FIXTURES / "h200_deepseek_v3_cold_b.json"
GROUPS_V4 = FIXTURES / "h200_groups_v4.json"
GROUPS_V4_PRO = FIXTURES / "h200_groups_v4_pro_structure.json"
# One GEMM of a DeepSeek-V4-Flash sweep, whose choice at M 16384 saves the most.
V4_FLASH = FIXTURES / "h200_deepseek_v4_flash_ratio4.json"

FLEET_DEVICES = ("node1:cuda:0", "node1:cuda:1", "node2:cuda:0", "node2:cuda:1")
# What NVML reported per rank: long names, two on the outlier.
FLEET_SLOWDOWNS = (None, None, "sw_power_cap", "hw_slowdown,sw_thermal_slowdown")
FLEET_OUTLIER_RANK = 3


def fleet_run() -> Run:
    """A fleet check of four H200s over four M values, the last rank 20% slower and the ranks' clocks apart."""

    def row(rank: int, m: int) -> Record:
        median_us = (6.0 + m / 100) * (1.2 if rank == FLEET_OUTLIER_RANK else 1.0)
        timer = TimerSummary(GRAPH_TIMER, median_us, 0.1, median_us - 0.1, median_us - 0.05, median_us + 0.05, 100)
        clocks = ClockSummary(
            sm_clock_mhz=1980 - 100 * rank, power_w=650.0 + rank, throttle_reasons=FLEET_SLOWDOWNS[rank]
        )
        case = Case("DeepSeek-V3", "router", "router", m, 256, 7168)
        return Record.for_case(
            case, "mm_out_dtype", OK, device=timer, rank=rank, device_id=FLEET_DEVICES[rank], clocks=clocks
        )

    ranks = tuple(
        Provenance(rank=rank, device_id=device, device_name="NVIDIA H200") for rank, device in enumerate(FLEET_DEVICES)
    )
    rows = [row(rank, m) for rank in range(len(FLEET_DEVICES)) for m in (1, 2, 4, 8)]
    return Run(Provenance(fleet=FleetProvenance(len(FLEET_DEVICES), "none", ranks)), rows)


def printed_at(width: int, monkeypatch, *args) -> str:
    monkeypatch.setattr(out_console, "width", width)
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def presets_part(listing: str) -> str:
    """The presets table of `gemmbench list`, without the backends' table (whose availability is the machine's)."""
    return listing.split("Backends (availability", 1)[0]


def test_recommend_in_a_narrow_terminal_keeps_every_tie_whole(monkeypatch):
    text = printed_at(NARROW_TERMINAL, monkeypatch, "recommend", COLD_A)
    assert CUT not in text
    assert "(M 1, 16, 256," in text and "1024, 4096)" in text  # the M lists, to their last value
    # what the choice saves, under the table, where a fifth column would leave no room for whole names
    assert "┃ saves against" not in text
    assert "  cublas_ext at M 8192 saves against mm_out_dtype: 2.64 µs (2.45 µs-2.75 µs, 6%)\n" in text
    check_snapshot(f"recommend_cold_a_{NARROW_TERMINAL}.txt", text)


@pytest.mark.parametrize(
    "width, in_column", [(NARROW_TERMINAL, False), (BETWEEN_TERMINAL, False), (WIDER_TERMINAL, True)]
)
def test_recommend_says_what_each_choice_saves_whole_at_any_width(width, in_column, monkeypatch):
    text = printed_at(width, monkeypatch, "recommend", V4_FLASH)
    assert CUT not in text and all(len(line) <= width for line in text.splitlines())
    assert ("┃ saves against mm_out_dtype" in text) == in_column  # its column where the table has room for it
    saving = "22.9 µs (16.8 µs-23.7 µs, 6%)"
    if in_column:
        assert f"│ M 16384: {saving}│" in text
    else:  # a line under the table, which may wrap between words
        assert f"cublas_ext at M 16384 saves against mm_out_dtype: {saving}" in " ".join(text.split())


def test_compare_in_a_narrow_terminal_keeps_backend_names_whole(monkeypatch):
    text = printed_at(NARROW_TERMINAL, monkeypatch, "compare", COLD_A, COLD_B)
    assert CUT not in text and "cublaslt_tuned_ext" in text
    assert "DeepSeek-V3 router N=256 K=7168\n" in text  # the GEMM named once, on a line of its own
    check_snapshot(f"compare_cold_{NARROW_TERMINAL}.txt", text)


def test_group_compare_in_a_narrow_terminal_keeps_group_and_backend_names_whole(monkeypatch):
    text = printed_at(NARROW_TERMINAL, monkeypatch, "compare", GROUPS_V4, GROUPS_V4_PRO)
    assert CUT not in text and "DeepSeek-V4-Pro attention_inputs\n" in text
    check_snapshot(f"compare_groups_v4_{NARROW_TERMINAL}.txt", text)


def test_fleet_in_a_narrow_terminal_keeps_every_header_and_value_whole(monkeypatch, tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text(run_to_json(fleet_run()))
    text = printed_at(NARROW_TERMINAL, monkeypatch, "fleet", path)
    assert CUT not in text
    assert "node2:cuda:1 · rank 3 · NVIDIA H200: outlier" in text and "sw_thermal_slowdown" in text
    check_snapshot(f"fleet_{NARROW_TERMINAL}.txt", text)


def test_list_in_a_narrow_terminal_keeps_preset_and_gemm_names_whole(monkeypatch):
    text = presets_part(printed_at(NARROW_TERMINAL, monkeypatch, "list", "--device", "cpu"))
    assert CUT not in text
    assert "deepseek-v4-pro (DeepSeek-V4-Pro)" in text and "compressor.fused_wkv_wgate.ratio128" in text
    check_snapshot(f"list_presets_{NARROW_TERMINAL}.txt", text)


# The wide layouts, pinned from the output before the narrow layouts existed: a wide terminal prints what it
# printed then (recommend's, since it says what each choice saves, in a column of its own where it fits).
WIDE_CASES = {
    f"recommend_cold_a_{WIDER_TERMINAL}.txt": (WIDER_TERMINAL, ["recommend", COLD_A]),
    f"recommend_v4_flash_{WIDER_TERMINAL}.txt": (WIDER_TERMINAL, ["recommend", V4_FLASH]),
    f"compare_cold_{WIDE_TERMINAL}.txt": (WIDE_TERMINAL, ["compare", COLD_A, COLD_B]),
    f"compare_groups_v4_{WIDE_TERMINAL}.txt": (WIDE_TERMINAL, ["compare", GROUPS_V4, GROUPS_V4_PRO]),
}
# A range's ties on one line in the wide layout: an M list of each recommend case, unbroken.
WIDE_TIES = {
    f"recommend_cold_a_{WIDER_TERMINAL}.txt": "cublas_ext (M 1,16,256,1024,4096)",
    f"recommend_v4_flash_{WIDER_TERMINAL}.txt": "cublas_ext (M 1,2,4,8,16,32)",
}


@pytest.mark.parametrize("name", sorted(WIDE_CASES))
def test_answers_in_a_wide_terminal_keep_their_wide_layout(name, monkeypatch):
    width, args = WIDE_CASES[name]
    text = printed_at(width, monkeypatch, *args)
    if args[0] == "recommend":  # each range's ties on one line, and the savings in their column
        assert "┃ saves against mm_out_dtype" in text and WIDE_TIES[name] in text
    check_snapshot(name, text)


def test_fleet_in_a_wide_terminal_keeps_its_table(monkeypatch, tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text(run_to_json(fleet_run()))
    check_snapshot(f"fleet_{WIDEST_TERMINAL}.txt", printed_at(WIDEST_TERMINAL, monkeypatch, "fleet", path))


def test_list_in_a_wide_terminal_keeps_its_presets_table(monkeypatch):
    text = presets_part(printed_at(WIDEST_TERMINAL, monkeypatch, "list", "--device", "cpu"))
    check_snapshot(f"list_presets_{WIDEST_TERMINAL}.txt", text)
