"""What `gemmbench list`, `env` and `ext status` show: presets, backends and their availability, facts."""

from __future__ import annotations

from rich.table import Table

from gemmbench.spec.presets import Preset

PRESET_COLUMNS = ("preset", "model", "gemm", "role", "N", "K", "in → out", "top_k")


def presets_table(presets: list[Preset]) -> Table:
    """Every GEMM of every preset; the preset's name and model on its first row."""
    table = Table(title="Presets (configs/*.toml)", title_justify="left")
    for column in PRESET_COLUMNS:
        table.add_column(column, justify="right" if column in ("N", "K", "top_k") else "left")
    for preset in presets:
        for i, g in enumerate(preset.gemms):
            table.add_row(
                preset.name if i == 0 else "",
                preset.model if i == 0 else "",
                g.name,
                g.role,
                str(g.n),
                str(g.k),
                f"{g.in_dtype} → {g.out_dtype}",
                str(g.top_k or ""),
            )
    return table


def backends_table(availabilities: list, device_type: str) -> Table:
    """Each backend, the code it stands for, and whether it runs here (and if not, why)."""
    table = Table(title=f"Backends (availability on {device_type})", title_justify="left")
    for column in ("backend", "code", "origin", "here"):
        table.add_column(column)
    for availability in availabilities:
        backend = availability.backend
        table.add_row(backend.name, backend.code, backend.origin, _availability_cell(availability))
    return table


def _availability_cell(availability) -> str:
    backend = availability.backend
    if not backend.real:
        return "test double"
    if availability.reason:
        cell = f"[yellow]no: {availability.reason}[/]"
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
