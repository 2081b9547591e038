"""Which kernels each backend ran, decoded (`gemmbench kernels`), and decoded kernel names (`decode`)."""

from __future__ import annotations

import re

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from gemmbench.analysis.decode import FAMILIES, KernelInfo, decode, gemm_kernel, short_name
from gemmbench.output.format import format_us, markdown_table, shape_title
from gemmbench.records import OK, KernelRun, Record, by_case

# Both kernel tables keep this many characters of a kernel name: the longest name of the H200 runs in
# docs/runs (cuBLAS's sm80_xmma split-K kernels, 131 characters) whole, since their tile sits mid-name and
# their split-K at its end. Only C++ names longer still (short_name elides their templates first) are cut.
KERNEL_NAME_WIDTH = 160

# Where a kernel name may go on to the next line: after an underscore, a C++ scope `::` or a template's `<`,
# so that each line ends where a part of the identifier ends.
NAME_BOUNDARY = re.compile(r"(?<=_)|(?<=::)|(?<=<)")

# Between two decoded fields of a kernel, on the line under its name.
FIELD_SEPARATOR = " · "

# The decoded fields sit this many columns right of the name they decode, to read as part of it.
FIELD_INDENT = 2

# Columns of the Markdown kernel table, which has no width limit: the decoded fields each in a column.
KERNEL_COLUMNS = ("kernel", "family", "arch", "types", "tile", "stages", "cluster", "split-K", "time")


# Kernel times down a column are all in µs, so that they compare at a glance: a kernel of a GEMM this
# tool measures takes from under a microsecond to a few milliseconds (2700 µs reads as well as 2.7 ms).
KERNEL_TIME_UNIT = "µs"


def pack(pieces: list[str], separator: str, width: int) -> list[str]:
    """The pieces in order on as few lines of `width` cells as they fill, a line breaking only between two
    pieces (a piece wider than `width` gets a line of its own)."""
    lines: list[str] = []
    for piece in pieces:
        if lines and cell_len(lines[-1] + separator + piece) <= width:
            lines[-1] += separator + piece
        else:
            lines.append(piece)
    return lines


class Packed:
    """Pieces of text that a table cell lays out on as many lines as its width needs, breaking only between
    two pieces: a kernel name between its parts, its decoded fields between two fields."""

    def __init__(self, pieces: list[str], separator: str = "", style: str = "") -> None:
        self.pieces, self.separator, self.style = pieces, separator, style

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest_piece = max(map(cell_len, self.pieces), default=0)
        return Measurement(longest_piece, cell_len(self.separator.join(self.pieces)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = pack(self.pieces, self.separator, options.max_width)
        yield Text("\n".join(lines), style=self.style, overflow="fold")  # a piece wider than the cell folds


def name_parts(name: str) -> list[str]:
    """`cublasLt::splitKreduce_kernel<…>` -> `cublasLt::`, `splitKreduce_`, `kernel<`, `…>`."""
    return [part for part in NAME_BOUNDARY.split(name) if part]


def _info_cells(info: KernelInfo) -> list[str]:
    """family, arch, types, tile, stages, cluster, split-K of a decoded name; '' where the name is silent."""
    split = "" if info.split_k is None else ("yes" if info.split_k else "no")
    stages = "" if info.stages is None else str(info.stages)
    return [info.family, info.arch or "", info.dtypes, info.tile, stages, info.cluster, split]


def field_pieces(info: KernelInfo) -> list[str]:
    """The decoded fields as words for the line under a name: each says what it is, and a field the name is
    silent on is left out."""
    split = {None: "", True: "split-K", False: "no split-K"}[info.split_k]
    labelled = [
        info.tile and f"tile {info.tile}",
        "" if info.stages is None else f"{info.stages} stages",
        info.cluster and f"cluster {info.cluster}",
    ]
    return [piece for piece in (info.family, info.arch or "", info.dtypes, *labelled, split) if piece]


def _kernel_cell(kernel: KernelRun) -> Group:
    name = short_name(kernel.name, width=KERNEL_NAME_WIDTH)
    fields = Packed(field_pieces(decode(kernel.name)), FIELD_SEPARATOR, style="dim")
    return Group(Packed(name_parts(name)), Padding(fields, (0, 0, 0, FIELD_INDENT)))


def _shared_gemm_line(records: list[Record]) -> str:
    """Which backends of one case run the very same GEMM kernel: the check vLLM made by hand."""
    by_kernel: dict[str, list[str]] = {}
    for record in records:
        kernel = gemm_kernel([k.name for k in record.kernels or ()])
        if kernel:
            by_kernel.setdefault(kernel, []).append(record.label)
    shared = [
        f"{', '.join(backends)} → {short_name(kernel, width=KERNEL_NAME_WIDTH)}"
        for kernel, backends in by_kernel.items()
        if len(backends) > 1
    ]
    return "same GEMM kernel: " + "; ".join(shared) if shared else "no two backends share a GEMM kernel"


def _case_table(group: list[Record]) -> Table:
    """One case's kernels, a row per kernel: the backend, the kernel's time, then the name with its decoded
    fields on the lines under it.

    Why this layout: a column per decoded field (as the Markdown table has) takes over 110 terminal columns
    before the name gets any, so at 80 or 100 columns the name, the one cell that must be read whole, was
    folded every 11 characters. Here the name has the widest column to itself and folds only between its
    parts (after `_`, `::`, `<`), the fields, each labelled, only between two fields; backend names and
    times never wrap. What is lost is reading one field down a column, which the Markdown table keeps.
    """
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("backend", style="cyan", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("kernel, decoded")
    for record in group:
        if record.status != OK or not record.kernels:
            note = record.reason if record.status != OK else "kernels not recorded"
            table.add_row(record.label, "", Text(f"{record.status}: {note}", style="dim"))
            continue
        for index, kernel in enumerate(record.kernels):
            time = format_us(kernel.duration_us, KERNEL_TIME_UNIT)
            table.add_row(record.label if index == 0 else "", time, _kernel_cell(kernel))
    return table


def layer_rows_note(records: list[Record]) -> str | None:
    """The line that stands for a run's rows in a layer, which the kernel tables leave out: the kernel pass
    profiles each GEMM alone, and in its layer the GEMM launches the same kernels. None without such rows."""
    in_layer = [r for r in records if r.context is not None]
    if not in_layer:
        return None
    producers = ", ".join(dict.fromkeys(r.context for r in in_layer))
    return (
        f"{len(in_layer)} rows in a layer (after {producers}) are left out: the kernel pass profiles each GEMM "
        "alone, and in its layer it launches the same kernels"
    )


def _cases_alone(records: list[Record]) -> dict:
    """The rows alone (the kernel pass profiles those), by case."""
    return by_case(r for r in records if r.context is None)


def kernel_tables(records: list[Record]) -> Group:
    """Per case: each backend's kernels in launch order, decoded; then which backends share a GEMM kernel.
    Rows alone only (`layer_rows_note` stands for the others)."""
    parts: list = []
    for case, group in _cases_alone(records).items():
        parts += [
            Text(f"{shape_title(case)}, M={case.m}", style="bold"),
            _case_table(group),
            Text(_shared_gemm_line(group)),
            Text(""),
        ]
    if note := layer_rows_note(records):
        parts.append(Text(note, style="dim"))
    return Group(*parts)


def _markdown_kernel_cells(kernel: KernelRun) -> list[str]:
    name = short_name(kernel.name, width=KERNEL_NAME_WIDTH)
    return [f"`{name}`", *_info_cells(decode(kernel.name)), format_us(kernel.duration_us, KERNEL_TIME_UNIT)]


def kernel_markdown(records: list[Record]) -> str:
    """The kernel tables as one Markdown table, ready to paste into a pull request; rows alone only, and
    the line that stands for the others under it."""
    rows: list[list[str]] = []
    for case, group in _cases_alone(records).items():
        label = f"{case.model} {case.gemm} M={case.m} N={case.n} K={case.k}"
        for record in group:
            if record.status == OK and record.kernels:
                rows += [[label, record.label, *_markdown_kernel_cells(kernel)] for kernel in record.kernels]
            else:
                rows.append([label, record.label, f"{record.status}: {record.reason or 'kernels not recorded'}"])
        rows.append([label, "", _shared_gemm_line(group)])
    note = layer_rows_note(records)
    return markdown_table(["case", "backend", *KERNEL_COLUMNS], rows) + (f"\n{note}\n" if note else "")


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
