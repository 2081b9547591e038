"""Group runs (`gemmbench group`) and the advice on them: rich tables, Markdown and JSON."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gemmbench.analysis.group_advice import GroupAdvice
from gemmbench.analysis.policy import (
    SAME_TOLERANCE,
)
from gemmbench.output.format import TIMER_LABELS, flags, format_us, markdown_table, reasons_text
from gemmbench.output.recommend import tie_rule
from gemmbench.records import OK, SKIPPED, GroupRecord, after_context, grouped
from gemmbench.records.timers import GRAPH_TIMER, median_of


def group_legend(records: list[GroupRecord]) -> str:
    """What the group tables' figures are, with the timer the rows used."""
    timers = {r.parallel_device.timer for r in records if r.parallel_device}
    if not timers:
        times = "none (no row was timed)"
    elif timers == {GRAPH_TIMER}:
        times = "CUDA-graph device time (eager latency below)"
    else:  # timers of another bench, named as the sweep tables name them
        times = ", ".join(TIMER_LABELS.get(timer, timer) for timer in sorted(timers))
    contexts = sorted({r.context for r in records if r.in_layer})
    in_layer = (
        f"; after {'/'.join(contexts)}: each way's time per layer, the producer that writes x included "
        "(docs/context.md)"
        if contexts
        else ""
    )
    return (
        "parallel: the members on their streams, forked from and joined to the default stream with events; "
        f"serial: all on one stream; times: {times}; speedup: serial over parallel; overlap: the members' "
        "times alone, summed, over the parallel time (1 = no gain; the stream count at best); critical path: "
        f"the stream whose members take longest alone{in_layer}"
    )


def _group_cell(record: GroupRecord | None) -> Text:
    if record is None:
        return Text("")
    if record.status != OK:
        return Text(record.status, style="dim" if record.status == SKIPPED else "red")
    style = "green" if record.speedup and record.speedup > 1 + SAME_TOLERANCE else ""
    text = Text(
        f"{format_us(median_of(record.parallel_device))} ∥ {format_us(median_of(record.serial_device))}", style=style
    )
    overlap = f", overlap {record.overlap_efficiency:.2f}" if record.overlap_efficiency is not None else ""
    text.append(f"\n{record.speedup:.2f}x{overlap}", style=style or "dim")
    text.append(
        f"\neager {format_us(median_of(record.parallel_latency))} ∥ {format_us(median_of(record.serial_latency))}",
        style="dim",
    )
    marks = flags(record)
    if marks:
        text.append(f"\n{' '.join(marks)}", style="yellow")
    return text


def group_tables(records: list[GroupRecord]) -> Group:
    """Per group: one row per M, one column per backend of the light members: parallel ∥ serial."""
    backends = list(dict.fromkeys(r.backend for r in records))
    parts: list = []
    for (model, name, context), group in grouped(records, lambda r: (r.model, r.group, r.context)).items():
        table = Table(pad_edge=False)
        table.add_column("M", justify="right", style="cyan")
        for backend in backends:
            table.add_column(f"light: {backend}", justify="right")
        by_m: dict[int, dict[str, GroupRecord]] = defaultdict(dict)
        for record in group:
            by_m[record.m][record.backend] = record
        for m in sorted(by_m):
            table.add_row(str(m), *(_group_cell(by_m[m].get(b)) for b in backends))
        timed = next((r for r in group if r.status == OK and r.members), None)
        members = ", ".join(f"{t.gemm} ({t.stream})" for t in timed.members) if timed else ""
        where = f" · per layer, after {context}" if context else (f": {members}" if members else "")
        parts += [Text(f"{model} {name}{where}", style="bold"), table]
    parts.append(Text("time: parallel ∥ serial. " + group_legend(records), style="dim"))
    reasons = reasons_text(records)
    if reasons:
        parts.append(reasons)
    return Group(*parts)


GROUP_COLUMNS = [
    "group",
    "M",
    "light backend",
    "parallel",
    "serial",
    "speedup",
    "overlap",
    "critical path",
    "eager parallel",
    "eager serial",
]


def group_markdown(records: list[GroupRecord]) -> str:
    rows = []
    for r in records:
        name = f"{r.model} {r.group}{after_context(r.context)}"
        if r.status != OK:
            rows.append([name, str(r.m), r.backend, f"{r.status}: {r.reason}"])
            continue
        rows.append(
            [
                name,
                str(r.m),
                r.backend,
                format_us(median_of(r.parallel_device)),
                format_us(median_of(r.serial_device)),
                f"{r.speedup:.2f}x",
                "" if r.overlap_efficiency is None else f"{r.overlap_efficiency:.2f}",
                r.critical_path or "",
                format_us(median_of(r.parallel_latency)),
                format_us(median_of(r.serial_latency)),
            ]
        )
    return markdown_table(GROUP_COLUMNS, rows) + "\n" + group_legend(records) + "\n"


ADVICE_COLUMNS = ["M", "light backend", "parallel", "serial", "speedup", "streams pay"]


def _advice_rows(advice: GroupAdvice) -> list[list[str]]:
    return [
        [
            str(c.m),
            c.backend,
            format_us(c.parallel_us),
            format_us(c.serial_us),
            f"{c.speedup:.3f}x",  # three decimals: two decimals read 1.03x for a yes and a no alike
            "yes" if c.streams_pay else "no",
        ]
        for c in advice.choices
    ]


def advice_summary(advice: GroupAdvice) -> str:
    up_to = advice.streams_pay_up_to
    backends = ", ".join(dict.fromkeys(c.backend for c in advice.choices)) or "none qualified"
    also = ", ".join(map(str, advice.streams_also_pay_at))
    if up_to:
        pays = f"the auxiliary streams pay up to M = {up_to}" + (f", and again at M = {also}" if also else "")
    else:
        pays = (
            f"the auxiliary streams do not pay at the smallest M, but at M = {also}"
            if also
            else "the auxiliary streams do not pay"
        )
    where = f" (in the layer, after {advice.context})" if advice.context else ""
    return f"{advice.model} {advice.group}{where}: {pays}; light GEMMs: {backends}"


def advice_tables(advice: list[GroupAdvice]) -> Group:
    parts: list = []
    for item in advice:
        table = Table(pad_edge=False)
        for column in ADVICE_COLUMNS:
            justify = "left" if column in ("light backend", "streams pay") else "right"
            table.add_column(column, justify=justify, overflow="fold")
        for row in _advice_rows(item):
            table.add_row(*row)
        parts += [Text(advice_summary(item), style="bold"), table]
    parts.append(
        Text(
            f"streams pay: parallel beats serial by more than {SAME_TOLERANCE:.0%} (serial / parallel above "
            f"{1 + SAME_TOLERANCE:.2f}); pay up to: from the smallest M on; " + tie_rule(),
            style="dim",
        )
    )
    return Group(*parts)


def advice_markdown(advice: list[GroupAdvice]) -> str:
    parts = [f"{advice_summary(item)}\n\n{markdown_table(ADVICE_COLUMNS, _advice_rows(item))}" for item in advice]
    return "\n".join(parts)


def advice_dicts(advice: list[GroupAdvice]) -> list[dict]:
    return [
        {
            "model": a.model,
            "group": a.group,
            "context": a.context,
            "streams_pay_up_to": a.streams_pay_up_to,
            "choices": [c.__dict__ for c in a.choices],
            "summary": advice_summary(a),
        }
        for a in advice
    ]
