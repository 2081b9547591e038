"""`gemmbench group`: a preset's groups of GEMMs on CUDA streams, timed serially and in parallel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gemmbench.cli.app import (
    EXIT_CODES_HELP,
    app,
    err_console,
    out_console,
)
from gemmbench.cli.options import (
    DEFAULT_OUT_DIR,
    AllowEmptyOpt,
    ConfigOpt,
    ContextOpt,
    DeviceOpt,
    JsonOutOpt,
    MdOpt,
    MOpt,
    NoSaveOpt,
    OutDirOpt,
    PlacementsOpt,
    PluginOpt,
    QuietOpt,
    SeedOpt,
    check_exports,
    split_values,
    warn_if_out_dir_unused,
)
from gemmbench.cli.session import finish, plan_session, refuse_torchrun, run_with_progress
from gemmbench.errors import UsageError
from gemmbench.output.groups import group_markdown, group_tables
from gemmbench.spec import presets

# `gemmbench group` without --backend: the backends serving engines use for the light GEMMs.
GROUP_DEFAULT_BACKENDS = ("mm_out_dtype", "cublas_ext", "linear_cast")

GroupPresetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--preset",
        "-p",
        metavar="NAME",
        help="A preset with [[group]] tables (repeatable): deepseek-v4-pro, deepseek-v4-flash. Required, or --config.",
    ),
]
GroupBackendOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--backend",
        "-b",
        metavar="NAMES",
        help="Backends that compute the group's light (bf16 -> fp32) members, each in turn (repeatable or "
        "comma-separated). Default: mm_out_dtype, cublas_ext, linear_cast; the heavy member runs torch.mm in "
        "its own dtypes.",
    ),
]
GroupCsvOpt = Annotated[
    str | None,
    typer.Option("--csv", help="Also write the group rows as CSV here, each as it finishes; - for stdout."),
]
GroupHotOpt = Annotated[bool, typer.Option("--hot", help="One set of inputs (hot L2). Default: cold L2.")]
GroupNoKernelsOpt = Annotated[
    bool, typer.Option("--no-kernels", help="Skip the profiler pass that shows which streams overlapped.")
]


def selected_groups(names: list[str], configs: list[Path]) -> list:
    """The groups of the named presets and config files; a usage error where there are none."""
    if not names and not configs:
        with_groups = [name for name in presets.preset_names() if presets.load_preset(name).groups]
        raise UsageError("no preset given", f"name one with groups: {', '.join(with_groups)}")
    loaded = [presets.load_preset(name) for name in names] + [presets.load_config(path) for path in configs]
    groups = [g for p in loaded for g in p.groups]
    if not groups:
        names = ", ".join(p.name for p in loaded)
        raise UsageError(f"no [[group]] in {names}", "give a preset with groups")
    return groups


def print_groups(console, groups, md: bool) -> None:
    if md:
        console.print(group_markdown(groups), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(group_tables(groups))


@app.command(epilog=EXIT_CODES_HELP)
def group(
    preset: GroupPresetOpt = None,
    config: ConfigOpt = None,
    m: MOpt = None,
    backend: GroupBackendOpt = None,
    device: DeviceOpt = "auto",
    plugin: PluginOpt = None,
    csv: GroupCsvOpt = None,
    json_path: JsonOutOpt = None,
    out_dir: OutDirOpt = DEFAULT_OUT_DIR,
    no_save: NoSaveOpt = False,
    allow_empty: AllowEmptyOpt = False,
    hot: GroupHotOpt = False,
    seed: SeedOpt = 0,
    placements: PlacementsOpt = None,
    no_kernels: GroupNoKernelsOpt = False,
    md: MdOpt = False,
    quiet: QuietOpt = False,
    context: ContextOpt = "none",
) -> None:
    """Run each [[group]] of a preset (DeepSeek-V4's attention input GEMMs) serially and on its CUDA streams:
    what the auxiliary streams are worth, with which backend for the light GEMMs, up to which M."""
    from gemmbench.measure.session import GroupWork

    refuse_torchrun("group", "run it without torchrun")
    warn_if_out_dir_unused(no_save, out_dir)
    names = split_values(preset)
    groups = selected_groups(names, config or [])
    plan = plan_session(
        presets=names,
        configs=config or [],
        m=m,
        backends=split_values(backend) or list(GROUP_DEFAULT_BACKENDS),
        device=device,
        hot=hot,
        seed=seed,
        kernels=not no_kernels,
        plugins=split_values(plugin),
        out_dir=None if no_save else out_dir,
        context=context,
        placements=placements,
    )
    check_exports(csv, json_path)  # after the plan, which creates --out-dir: an export may go into it
    console = err_console if "-" in (csv, json_path) else out_console
    notes = err_console if not quiet else None
    result = run_with_progress(plan, console, notes, not quiet, work=GroupWork(groups), csv=csv)
    rows = result.run.groups
    finish(result, rows, lambda: print_groups(console, rows, md), notes, csv, json_path, allow_empty, "group row")
