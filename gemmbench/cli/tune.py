"""`gemmbench tune`: router_small_m's configurations for the GEMMs of presets and shapes, timed on this GPU
and written as a tuning file that sweeps use from then on, and that can be shipped with gemmbench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gemmbench.cache import write_json
from gemmbench.cli.app import TUNE_EXIT_CODES_HELP, app, err_console, out_console, warn
from gemmbench.cli.options import ConfigOpt, PresetOpt, QuietOpt, ShapeOpt, split_values
from gemmbench.cli.session import plan_session, refuse_torchrun
from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.output.format import format_us

TuneDeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (the current GPU), cuda or cuda:N (GPU N): the GPU to tune for.")
]
TuneMOpt = Annotated[
    str | None,
    typer.Option(
        "--m",
        help="Token counts M; each is tuned for its power-of-two bucket. Default: every bucket router_small_m "
        "runs (the powers of two up to its largest M).",
    ),
]
TuneOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="The tuning file to write. Default: the tunings folder of your cache, which sweeps on this "
        "machine read from then on. To ship one with gemmbench, add it to gemmbench/backends/tunings/.",
    ),
]


@app.command(epilog=TUNE_EXIT_CODES_HELP)
def tune(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    shape: ShapeOpt = None,
    m: TuneMOpt = None,
    device: TuneDeviceOpt = "auto",
    out: TuneOutOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Tune router_small_m for every bf16 -> fp32 GEMM of the presets and shapes it runs (small M) at each M
    bucket, on this GPU, and write a tuning file: the winner per shape and bucket, its time and its margin."""
    from gemmbench.backends import router_small_m_tuning as tuning
    from gemmbench.backends.router_small_m_kernel import MAX_M
    from gemmbench.measure.tuning import tunable, tune_cases

    refuse_torchrun("tune", "run it without torchrun, on the GPU to tune for")
    plan = plan_session(
        presets=split_values(preset),
        configs=config or [],
        shapes=split_values(shape),
        m=m or f"1:{MAX_M}:x2",
        backends=["router_small_m"],
        device=device,
        kernels=False,
    )
    cases = tunable(plan.cases, plan.device)
    if not cases:
        raise UsageError(f"router_small_m runs none of these GEMMs (bf16 -> fp32, M <= {MAX_M})", "give router shapes")
    notes = None if quiet else err_console

    def started(index: int, case) -> None:
        if notes:
            notes.print(f"tuning N={case.n}, K={case.k}, M <= {tuning.block_m(case.m)} ({index + 1} of {len(cases)})…")

    tuned, failed = tune_cases(cases, plan.device, started)
    for key, reason in failed.items():
        warn(f"{key} not tuned: {reason}")
    if not tuned:
        raise GemmbenchError("no shape could be tuned (the reasons are above)", "run it on a GPU that runs Triton")
    import torch

    gpu = torch.cuda.get_device_name(plan.device)
    path = out or tuning.default_tuning_path(gpu)
    try:
        write_json(path, tuning.tuning_file(gpu, tuned, tuning.software()))
    except OSError as exc:
        raise GemmbenchError(f"cannot write {path}: {exc.strerror or exc}", "give --out a writable path") from exc
    out_console.print(tunings_table(tuned))
    out_console.print(f"wrote {path}: {len(tuned)} tunings for {gpu}; margin: the runner-up's time over the winner's")
    if failed:
        raise typer.Exit(1)


def tunings_table(tuned: dict) -> Table:
    """Each tuned shape and bucket: the winning configuration, its time, and its margin over the runner-up."""
    table = Table(pad_edge=False)
    for column in ("shape", "configuration", "time", "margin"):
        table.add_column(column, justify="right" if column in ("time", "margin") else "left")
    for key, result in tuned.items():
        table.add_row(key, str(result.config), format_us(result.time_us), f"{result.margin:.3f}x")
    return table
