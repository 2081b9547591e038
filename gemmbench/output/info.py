"""What `gemmbench list`, `env` and `ext status` show: presets, backends and their availability, facts."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gemmbench.output.format import WideOrNarrow
from gemmbench.spec.cases import GemmSpec
from gemmbench.spec.presets import Preset

PRESET_COLUMNS = ("preset", "model", "gemm", "role", "N", "K", "in → out", "top_k")
PRESETS_TITLE = "Presets (configs/*.toml)"

# The narrow presets table: a row naming each preset and its model, over a row per GEMM, whose name is
# indented by GEMM_INDENT; its first column holds both, its others a GEMM's fields (the in → out types only
# where the GEMMs do not all share them).
NARROW_FIRST_COLUMN = "preset (model), gemm"
GEMM_INDENT = "  "
GEMM_FIELD_COLUMNS = PRESET_COLUMNS[3:]  # the columns after preset, model and gemm


def _right_justified(column: str) -> str:
    return "right" if column in ("N", "K", "top_k") else "left"


def _dtypes(gemm: GemmSpec) -> str:
    return f"{gemm.in_dtype} → {gemm.out_dtype}"


def presets_table(presets: list[Preset]) -> WideOrNarrow:
    """Every GEMM of every preset: a column per field, the preset's name and model on its first row (the wide
    layout), where that fits the console's width; else a row naming the preset and its model over its GEMMs'
    rows, with their types in the title where all share them (the narrow layout), which keeps every name whole
    in an 80-column terminal."""
    table = _wide_presets_table(presets)
    return WideOrNarrow([table], wide=table, narrow=_narrow_presets_table(presets))


def _wide_presets_table(presets: list[Preset]) -> Table:
    table = Table(title=PRESETS_TITLE, title_justify="left")
    for column in PRESET_COLUMNS:
        table.add_column(column, justify=_right_justified(column))
    for preset in presets:
        for i, g in enumerate(preset.gemms):
            table.add_row(
                preset.name if i == 0 else "",
                preset.model if i == 0 else "",
                g.name,
                g.role,
                str(g.n),
                str(g.k),
                _dtypes(g),
                str(g.top_k or ""),
            )
    return table


def _narrow_presets_table(presets: list[Preset]) -> Table:
    dtypes = {_dtypes(g) for preset in presets for g in preset.gemms}
    shared = dtypes.pop() if len(dtypes) == 1 else None
    columns = [c for c in GEMM_FIELD_COLUMNS if not (shared and c == "in → out")]
    title = f"{PRESETS_TITLE}, every GEMM {shared}" if shared else PRESETS_TITLE
    table = Table(title=title, title_justify="left")
    table.add_column(NARROW_FIRST_COLUMN, overflow="fold")  # a name wider than an 80-column table folds, whole
    for column in columns:
        table.add_column(column, justify=_right_justified(column))
    for preset in presets:
        table.add_row(Text(f"{preset.name} ({preset.model})", style="bold"))
        for i, g in enumerate(preset.gemms):
            fields = {"role": g.role, "N": str(g.n), "K": str(g.k), "in → out": _dtypes(g), "top_k": str(g.top_k or "")}
            table.add_row(GEMM_INDENT + g.name, *(fields[c] for c in columns), end_section=i == len(preset.gemms) - 1)
    return table


def backends_table(availabilities: list, device_type: str) -> Table:
    """Each backend, the code it stands for, where it comes from, whether it launches with programmatic
    dependent launch, and whether it runs here (and if not, why)."""
    table = Table(title=f"Backends (availability on {device_type})", title_justify="left")
    for column in ("backend", "code", "origin", "PDL", "here"):
        table.add_column(column, overflow="fold")  # a word wider than its column folds rather than lose its end
    for availability in availabilities:
        backend = availability.backend
        pdl = backend.pdl_use or ("off and on (two rows)" if backend.launches_with_pdl else "no")
        table.add_row(backend.name, backend.code, backend.origin, pdl, _availability_cell(availability))
    return table


def producers_table(producers: list, reasons: list[str | None], device_type: str) -> Table:
    """Each producer of `--context` (the kernel that writes a GEMM's input in its layer): the code, where it
    comes from, its part in programmatic dependent launch, and whether it runs here."""
    table = Table(title=f"Contexts: producers before the GEMM (availability on {device_type})", title_justify="left")
    for column in ("context", "code", "origin", "PDL", "here"):
        table.add_column(column, overflow="fold")
    for producer, reason in zip(producers, reasons, strict=True):
        here = f"[yellow]no: {escape(reason)}[/]" if reason else "[green]yes[/]"
        table.add_row(producer.name, producer.code, producer.origin, producer.pdl, here)
    return table


def _availability_cell(availability) -> str:
    backend = availability.backend
    if availability.reason:
        cell = f"[yellow]no: {escape(availability.reason)}[/]"  # a reason may hold brackets: 'gemmbench[engines]'
    elif availability.builds_first:
        cell = "[green]yes[/] (the extension builds on first use)"
    else:
        cell = "[green]yes[/]"
    return cell if backend.in_default_set else f"{cell}; only with --backend {backend.name}"


def facts_table(facts: dict) -> Table:
    """A flat dict as a two-column table for people ('–' for None)."""
    table = Table(show_header=False)
    for key, value in facts.items():
        table.add_row(key, "–" if value is None else str(value))
    return table
