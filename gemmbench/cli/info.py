"""What this machine offers and holds: list (presets, backends), env, and the extension's build, status and
clean."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gemmbench.cli.app import _Group, app, backends_print_to_stderr, err_console, out_console
from gemmbench.cli.options import DeviceOpt, PluginOpt, split_values
from gemmbench.errors import GemmbenchError
from gemmbench.output.info import backends_table, facts_table, presets_table, producers_table
from gemmbench.spec import presets


@app.command("list")
def list_(device: DeviceOpt = "auto", plugin: PluginOpt = None) -> None:
    """List the shape presets with their GEMMs, the backends and the contexts' producers, each with its
    origin, its use of programmatic dependent launch (PDL) and whether it runs here."""
    from gemmbench.backends import REGISTRY, availability
    from gemmbench.backends.plugins import load_plugins
    from gemmbench.backends.producers import PRODUCERS
    from gemmbench.backends.registry import ask_unavailable
    from gemmbench.measure import environment

    dev = environment.select_device(device)  # a bad --device is an error before any output
    with backends_print_to_stderr():  # what a plugin prints as it is imported
        load_plugins(split_values(plugin))
    out_console.print(presets_table([presets.load_preset(name) for name in presets.preset_names()]))
    probe = presets.load_preset(presets.DEFAULT_PRESET).gemms[0].case(1)
    out_console.print(backends_table(availability(list(REGISTRY.values()), probe, dev), dev.type))
    producers = list(PRODUCERS.values())
    reasons = [ask_unavailable(producer.unavailable_reason, probe, dev) for producer in producers]
    out_console.print(producers_table(producers, reasons, dev.type))


@app.command()
def env(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """What this machine offers: torch, CUDA, GPU, cuBLAS, and whether torch.mm(out_dtype=) works."""
    from gemmbench.measure import environment

    _print_facts(environment.environment_facts(environment.select_device("auto")), as_json)


ext_app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="The optional C++/CUDA extension, built with the local CUDA toolkit on first use: the backends "
    "cublas_ext, cublaslt_ext, cublaslt_tuned_ext, router_small_m_ext and router_small_m_mma, and "
    "gemmbench's norm (the gemmbench_norm_pdl_* contexts).",
)

app.add_typer(ext_app, name="ext")


@ext_app.command("build")
def ext_build() -> None:
    """Build the extension now (into the per-user cache); show the compiler output if it fails."""
    from gemmbench.backends import ext

    status = ext.status()
    if status.built:
        out_console.print(f"already built: {status.library}")
        return
    if status.cannot_build:
        raise GemmbenchError(
            f"cannot build the cuBLAS extension here: {status.cannot_build}", "see gemmbench ext status"
        )
    err_console.print(f"building into {status.library.parent} (about a minute) …")
    try:
        path = ext.build()
    except ext.ExtensionUnavailable as exc:
        log = ext.build_dir() / ext.LOG_NAME
        if log.is_file():
            err_console.print(log.read_text(), markup=False, highlight=False)
        raise GemmbenchError(
            f"cannot build the cuBLAS extension: {exc}",
            "fix the compiler error above and run gemmbench ext build again",
        ) from None
    out_console.print(f"built: {path}")


@ext_app.command("status")
def ext_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Built or not, where, for which torch and CUDA; and if it cannot build or run here, why."""
    from gemmbench.backends import ext

    _print_facts(ext.status().facts(), as_json)


@ext_app.command("clean")
def ext_clean() -> None:
    """Remove every cached build of the extension."""
    from gemmbench.backends import ext

    removed = ext.clean()
    out_console.print(f"removed {len(removed)} build(s) from {ext.cache_root() / 'ext'}")


def _print_facts(facts: dict, as_json: bool) -> None:
    """A flat dict as JSON, or as a two-column table for people."""

    if as_json:
        typer.echo(json.dumps(facts, indent=1))
        return
    out_console.print(facts_table(facts))
