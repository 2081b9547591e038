"""The options that several commands share, and what they turn into: the shape, M, backend, device and
plugin selection of a sweep, and the filters of a saved run's rows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gemmbench.cli.app import warn
from gemmbench.errors import UsageError
from gemmbench.records import select_records
from gemmbench.records.runfile import ensure_writable_file
from gemmbench.spec.parse import CPU_DEFAULT_M, DEFAULT_M, parse_m_list, parse_shape
from gemmbench.spec.presets import DEFAULT_PRESET, check_roles, select_gemms
from gemmbench.timing.defaults import (
    EAGER_WINDOW_S,
    EAGER_WINDOWS,
    MAX_BUDGET_MS,
    MAX_EAGER_WINDOWS,
    MAX_PLACEMENTS,
    MAX_TARGET_CI_PCT,
    MAX_WARMUP_MS,
    MIN_BUDGET_MS,
    MIN_TARGET_CI_PCT,
    PLACEMENTS,
    POINT_WARMUP_S,
)
from gemmbench.timing.stopping import MAX_SAMPLES, rule_conflict, rule_options_given


def split_values(values: list[str] | None) -> list[str]:
    """Repeatable options also take comma-separated lists: --backend a,b == --backend a --backend b."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


PresetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--preset",
        "-p",
        metavar="NAME",
        help="Shape preset from configs/ (repeatable; `gemmbench list` shows them). "
        f"Default: {DEFAULT_PRESET} when no --preset, --config or --shape is given.",
    ),
]

ConfigOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--config", metavar="FILE", help="Your own preset TOML file (repeatable), same format as configs/*.toml."
    ),
]

ShapeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--shape",
        metavar="SHAPE",
        help="A GEMM of your own (repeatable): MxNxK, x[M, K] @ w[N, K].T at its own M (--m does not apply), "
        "or NxK, run at the --m values.",
    ),
]

RoleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        metavar="ROLE",
        help="Only the presets' and configs' GEMMs of this role: router or attention (--shape GEMMs run as given).",
    ),
]

MOpt = Annotated[
    str | None,
    typer.Option(
        "--m",
        help="Token counts M: a list 1,8,64, a range 1:16 (every M), 1:16384:x2 or 8:64:+8, or a mix. "
        f"Default on a GPU: every M from 1 to 16 (decode, where the first tier runs), then powers of two to "
        f"{DEFAULT_M[-1]}; {','.join(map(str, CPU_DEFAULT_M))} on the CPU.",
    ),
]

BackendOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--backend",
        "-b",
        metavar="NAMES",
        help="Backends to run (repeatable or comma-separated). Default: every real backend; "
        "those that cannot run here show as skipped rows.",
    ),
]

DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (CUDA if present), cuda (the current GPU), cuda:N (GPU N) or cpu.")
]
GpuOpt = Annotated[
    str,
    typer.Option(
        "--device",
        help="auto (the current GPU), cuda or cuda:N (GPU N): kernel names need a GPU (--from reads a saved "
        "run's instead, on any machine).",
    ),
]

# Options that sweep and group share.
JsonOutOpt = Annotated[str | None, typer.Option("--json", help="Also write the run as JSON here; - for stdout.")]

OutDirOpt = Annotated[Path, typer.Option("--out-dir", help="Folder for the run file, written after every row.")]
DEFAULT_OUT_DIR = Path("results")

NoSaveOpt = Annotated[bool, typer.Option("--no-save", help="Do not write a run file.")]

AllowEmptyOpt = Annotated[
    bool,
    typer.Option(
        "--allow-empty",
        help="Exit 0 even when no row was timed (every row skipped, e.g. GPU backends on a machine without one).",
    ),
]

SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random inputs.")]

WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="A checkpoint's .safetensors file: its router weight (the lowest layer's '...gate.weight', or "
        "--weight-tensor) and bias ('...gate.e_score_correction_bias' or '...gate.bias' beside it, or "
        "--bias-tensor) replace the synthetic ones of the router whose shape they fit, in its routing check and "
        "its timing inputs.",
    ),
]
WeightTensorOpt = Annotated[str | None, typer.Option("--weight-tensor", help="The router weight's name in --weights.")]
BiasTensorOpt = Annotated[str | None, typer.Option("--bias-tensor", help="The routing bias's name in --weights.")]
ActivationsOpt = Annotated[
    str | None,
    typer.Option(
        "--activations",
        help="Hidden states [T, K] for the routing check and the timing inputs: a .safetensors or torch file "
        "(used where K fits), "
        "or synthetic: 'normal' (N(0, 1), the default) or 'outliers' (a few channels 20x larger).",
    ),
]
ActivationsTensorOpt = Annotated[
    str | None, typer.Option("--activations-tensor", help="The hidden states' name in an --activations file.")
]

AllRowsOpt = Annotated[
    bool,
    typer.Option(
        "--all-rows",
        help="Also the rows of backends at M beyond their range (a first tier's, past its largest M), which "
        "never run and are left out by default.",
    ),
]

# The sweep's own options (measurement, outputs, data).
CsvRowsOpt = Annotated[
    str | None,
    typer.Option(
        "--csv",
        help="Also write one CSV row per (case, backend) here, each as it finishes (under torchrun: at the "
        "end); - for stdout.",
    ),
]
HotOpt = Annotated[
    bool,
    typer.Option(
        "--hot",
        help="Time one set of buffers (hot L2). Default: cold L2, rotating "
        "input copies past twice the L2, as in a forward pass that evicted the weights.",
    ),
]
TargetCiOpt = Annotated[
    float,
    typer.Option(
        "--target-ci",
        min=MIN_TARGET_CI_PCT,
        max=MAX_TARGET_CI_PCT,
        help="Sample the device time (CUDA graphs) until the 95% CI of its median is within ± this many percent...",
    ),
]
BudgetOpt = Annotated[
    float,
    typer.Option(
        "--budget-ms",
        min=MIN_BUDGET_MS,
        max=MAX_BUDGET_MS,
        help="...or until this many ms of sampling per row (its placements share them); rows that miss the target are "
        "flagged noisy. "
        f"(The eager latency is sampled in {EAGER_WINDOWS} windows of {EAGER_WINDOW_S * 1e3:g} ms interleaved "
        f"between the point's backends, up to {MAX_EAGER_WINDOWS} where the host moved.)",
    ),
]
WarmupOpt = Annotated[
    float | None,
    typer.Option(
        "--warmup-ms",
        min=0,
        max=MAX_WARMUP_MS,
        help=f"Warm-up time per point before timing, in ms (default {POINT_WARMUP_S * 1e3:g}).",
    ),
]
NoKernelsOpt = Annotated[bool, typer.Option("--no-kernels", help="Skip the profiler pass that records kernel names.")]
MdOpt = Annotated[bool, typer.Option("--md", help="Print a Markdown table.")]
MdTablesOpt = Annotated[
    bool, typer.Option("--md", help="Print the results as a Markdown table instead of rich tables.")
]
RemeasureRooflineOpt = Annotated[
    bool,
    typer.Option(
        "--remeasure-roofline",
        help="Measure the device's bandwidth and bf16 throughput again instead of using the cached figures.",
    ),
]
KeepSamplesOpt = Annotated[
    bool,
    typer.Option(
        "--keep-samples",
        help="Keep each row's raw eager-latency and device-time samples (µs per call, in the order taken) in "
        "the run file, the CSV and to_frame(), beside the summaries derived from them.",
    ),
]
SplitOpt = Annotated[
    str,
    typer.Option(
        "--split",
        help="Under torchrun: 'points' measures each point once, spread over the ranks (one merged run); "
        "'none' has every rank measure every point (a fleet check; see gemmbench fleet).",
    ),
]

SamplesOpt = Annotated[
    int | None,
    typer.Option(
        "--samples",
        min=1,
        max=MAX_SAMPLES,
        help="Sample each device time for exactly this many graph replays (shared among its placements) instead "
        "of until --target-ci or --budget-ms: the same cost on every run, whatever the interval.",
    ),
]

PlacementsOpt = Annotated[
    int | None,
    typer.Option(
        "--placements",
        min=1,
        max=MAX_PLACEMENTS,
        help=f"Sets of input buffers, allocated apart, that each point's timers sample (default {PLACEMENTS} on a "
        "GPU, 1 on the CPU): where buffers land moves a GEMM's time, and the interval covers it only over several.",
    ),
]

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notes on stderr.")]

PluginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        metavar="PLUGIN",
        help="A module or .py file that adds backends of your own (repeatable; docs/plugins.md). Plugins of "
        "installed packages (entry points, group gemmbench.backends) load without it.",
    ),
]


def filtered(records, preset, config, shape, role, m, backend) -> list:
    """The records of a saved run that the shape, M and backend options admit (only those given)."""
    check_roles(split_values(role))
    gemms = select_gemms(split_values(preset), list(config or []), []) if preset or config else []
    return select_records(
        records,
        backends=split_values(backend),
        m_values=parse_m_list(m) if m else (),
        gemms=gemms,
        roles=split_values(role),
        shapes=[parse_shape(text) for text in split_values(shape)],
    )


def selection(preset, config, shape, role, m, backend, device, plugin) -> dict:
    """The shape, M, backend, device and plugin options that sweep and kernels share, as plan_sweep takes them."""
    return {
        "plugins": split_values(plugin),
        "presets": split_values(preset),
        "configs": config or [],
        "shapes": split_values(shape),
        "roles": split_values(role),
        "m": m,
        "backends": split_values(backend),
        "device": device,
    }


def routing_files(weights, weight_tensor, bias_tensor, activations, activations_tensor) -> dict:
    """The routing check's data options (the user's router weight, bias and hidden states), as plan_sweep
    takes them."""
    return {
        "weights": weights,
        "weight_tensor": weight_tensor,
        "bias_tensor": bias_tensor,
        "activations": activations,
        "activations_tensor": activations_tensor,
    }


def check_exports(csv: str | None, json_path: str | None) -> None:
    """Before any work: each export path can be written, and they are not the same (stdout, or one file the
    second export would overwrite)."""
    for path, example in ((csv, "results.csv"), (json_path, "run.json")):
        if path:
            ensure_writable_file(path, example)
    if csv == "-" and json_path == "-":
        raise UsageError("--csv - and --json - both ask for stdout", "send one of them to a file")
    if csv and json_path and csv != "-" and Path(csv).resolve() == Path(json_path).resolve():
        raise UsageError(f"--csv and --json both name {csv}: the JSON would overwrite the CSV", "give two files")


def one_format(*flags: tuple[str, bool]) -> None:
    """At most one output-format flag: each of them chooses the whole output."""
    given = [flag for flag, on in flags if on]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} each choose the output format", "give one of them")


ContextOpt = Annotated[
    str,
    typer.Option(
        "--context",
        help="Also time each GEMM in its layer, right after the kernel that writes its input, one or more, "
        "comma-separated: flashinfer_fused_add_rmsnorm[_pdl] and flashinfer_rmsnorm[_pdl] (the engines' norms, "
        "FlashInfer's), vllm_fused_add_rms_norm and vllm_rms_norm (vLLM's), "
        "norm (torch's F.rms_norm), copy (one elementwise kernel), gemmbench_norm_pdl_start and "
        "gemmbench_norm_pdl_after_stores (gemmbench's norm, letting a PDL-launched GEMM start at its start or "
        "after its stores: what-ifs), or a plugin's producer; `gemmbench list` names them. docs/context.md.",
    ),
]


def given_timer_flags(samples: int | None, target_ci: float, budget_ms: float) -> list[str]:
    """The device timer's options given (a value other than its default counts as given)."""
    return rule_options_given(samples, target_ci, budget_ms, ("--samples", "--target-ci", "--budget-ms"))


def refuse_timer_conflicts(given: list[str]) -> None:
    """--samples is a fixed count instead of the stopping rule that --target-ci and --budget-ms set: both at
    once ask for two things."""
    if conflict := rule_conflict(given, "--samples"):
        raise UsageError(conflict, "give one or the other")


def warn_if_out_dir_unused(no_save: bool, out_dir: Path) -> None:
    """--out-dir given with --no-save changes nothing: say so."""
    if no_save and out_dir != DEFAULT_OUT_DIR:
        warn("--out-dir has no effect with --no-save: no run file is written")
