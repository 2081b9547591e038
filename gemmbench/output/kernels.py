"""Which kernels each backend ran, decoded (`gemmbench kernels`), and decoded kernel names (`decode`)."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from gemmbench.analysis.decode import FAMILIES, KernelInfo, decode, gemm_kernel, short_name
from gemmbench.output.format import markdown_table, shape_title
from gemmbench.records import OK, KernelRun, Record, by_case

# The Markdown kernel table, which has no width limit, keeps this many characters of a kernel name (the
# rich table folds names to the terminal's width instead).
MARKDOWN_KERNEL_NAME_WIDTH = 100

# Columns of decoded kernel fields, shared by the rich and the Markdown kernel tables.
KERNEL_COLUMNS = ("kernel", "family", "arch", "types", "tile", "stages", "cluster", "split-K", "µs")


def _info_cells(info: KernelInfo) -> list[str]:
    """family, arch, types, tile, stages, cluster, split-K of a decoded name; '' where the name is silent."""
    split = "" if info.split_k is None else ("yes" if info.split_k else "no")
    stages = "" if info.stages is None else str(info.stages)
    return [info.family, info.arch or "", info.dtypes, info.tile, stages, info.cluster, split]


def _kernel_cells(kernel: KernelRun) -> list[str]:
    return [short_name(kernel.name), *_info_cells(decode(kernel.name)), format_duration_us(kernel.duration_us)]


def format_duration_us(value: float | None) -> str:
    """A kernel's duration in the µs column: three significant figures, never an exponent (1170, not
    1.17e+03), so that the column reads in one unit."""
    if value is None:
        return ""
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _shared_gemm_line(records: list[Record]) -> str:
    """Which backends of one case run the very same GEMM kernel: the check vLLM made by hand."""
    by_kernel: dict[str, list[str]] = {}
    for record in records:
        kernel = gemm_kernel([k.name for k in record.kernels or ()])
        if kernel:
            by_kernel.setdefault(kernel, []).append(record.label)
    shared = [
        f"{', '.join(backends)} → {short_name(kernel)}" for kernel, backends in by_kernel.items() if len(backends) > 1
    ]
    return "same GEMM kernel: " + "; ".join(shared) if shared else "no two backends share a GEMM kernel"


def kernel_tables(records: list[Record]) -> Group:
    """Per case: each backend's kernels in launch order, decoded; then which backends share a GEMM kernel."""
    parts: list = []
    for case, group in by_case(records).items():
        # No vertical rules: ten columns must fit a 120-column terminal.
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column("backend", style="cyan", overflow="fold")
        for column in KERNEL_COLUMNS:
            table.add_column(
                column,
                justify="right" if column in ("stages", "µs") else "left",
                overflow="fold",  # a narrow terminal folds long cells onto more lines; no column is cut
            )
        for record in group:
            if record.status != OK or not record.kernels:
                note = record.reason if record.status != OK else "kernels not recorded"
                table.add_row(
                    record.label, Text(f"{record.status}: {note}", style="dim"), *[""] * (len(KERNEL_COLUMNS) - 1)
                )
                continue
            for index, kernel in enumerate(record.kernels):
                table.add_row(record.label if index == 0 else "", *_kernel_cells(kernel))
        parts += [
            Text(f"{shape_title(case)}, M={case.m}", style="bold"),
            table,
            Text(_shared_gemm_line(group)),
            Text(""),
        ]
    return Group(*parts)


def kernel_markdown(records: list[Record]) -> str:
    """The kernel tables as one Markdown table, ready to paste into a pull request."""
    rows: list[list[str]] = []
    for case, group in by_case(records).items():
        label = f"{case.model} {case.gemm} M={case.m} N={case.n} K={case.k}"
        for record in group:
            if record.status == OK and record.kernels:
                for kernel in record.kernels:
                    cells = _kernel_cells(kernel)
                    cells[0] = f"`{short_name(kernel.name, width=MARKDOWN_KERNEL_NAME_WIDTH)}`"
                    rows.append([label, record.label, *cells])
            else:
                rows.append([label, record.label, f"{record.status}: {record.reason or 'kernels not recorded'}"])
        rows.append([label, "", _shared_gemm_line(group)])
    return markdown_table(["case", "backend", *KERNEL_COLUMNS], rows)


def decoded_tables(infos: list[KernelInfo]) -> Group:
    """Each name, then its fields one per line: readable however long the name."""
    parts: list = []
    for info in infos:
        if not info.recognised:
            known = ", ".join(f for f in FAMILIES if f != "other")
            parts += [
                Text(info.name, style="bold"),
                Text(f"not recognised: not a name of {known}", style="yellow"),
                Text(""),
            ]
            continue
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="dim")
        table.add_column()
        for key, value in info.to_dict().items():
            if key != "name":
                table.add_row(
                    key, "–" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
                )
        parts += [Text(info.name, style="bold"), table, Text("")]
    return Group(*parts)
