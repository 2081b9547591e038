"""The recommendation per GEMM shape (`gemmbench recommend`): rich tables, Markdown and JSON."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gemmbench.analysis.policy import (
    PREFERENCE,
    SAME_TOLERANCE,
)
from gemmbench.analysis.recommend import MRange, ShapeRecommendation
from gemmbench.output.format import WideOrNarrow, markdown_table
from gemmbench.records import OK, Record


def range_rule(ranges: list[MRange], index: int) -> str:
    """The dispatch rule of `ranges[index]`: "M <= 8", "8 < M <= 64", "M > 64", or "all M"."""
    last = ranges[index].last_m
    previous = ranges[index - 1].last_m if index else None
    if len(ranges) == 1:
        return "all M"
    if index == 0:
        return f"M <= {last}"
    if index == len(ranges) - 1:
        return f"M > {previous}"
    return f"{previous} < M <= {last}"


def recommendation_summary(recommendation: ShapeRecommendation) -> str:
    ranges = recommendation.ranges
    return "; ".join(f"{range_rule(ranges, i)}: {r.backend}" for i, r in enumerate(ranges)) or "no backend qualified"


def why_not_qualified(record: Record, tolerance: float) -> str:
    if record.status != OK:
        return f"{record.status}: {record.reason}"
    if record.rel_err is None:
        return "no relative error recorded"
    if record.rel_err > tolerance:
        return f"rel_err {record.rel_err:.1e} > {tolerance:g}"
    return "not timed"


def recommendation_dicts(recommendations: list[ShapeRecommendation]) -> list[dict]:
    """The recommendations as `recommend --json` writes them: every field, each range's rule, a summary."""
    return [
        {
            "model": rec.model,
            "gemm": rec.gemm,
            "n": rec.n,
            "k": rec.k,
            "tolerance": rec.tolerance,
            "ranges": [
                {"first_m": r.first_m, "last_m": r.last_m, "backend": r.backend, "rule": range_rule(rec.ranges, i)}
                for i, r in enumerate(rec.ranges)
            ],
            "winners": rec.winners,
            "tied": rec.tied,
            "excluded": {backend: why_not_qualified(record, rec.tolerance) for backend, record in rec.excluded.items()},
            "summary": recommendation_summary(rec),
            "figure": rec.figure,
            "simulated": list(rec.simulated),
            "throttled_m": list(rec.throttled),
            "caveat": simulated_caveat(rec.simulated) if rec.simulated else None,
        }
        for rec in recommendations
    ]


# How a table writes the ties of one M range: one of the three functions below.
TiesCell = Callable[[ShapeRecommendation, MRange], str]


def _tie_items(recommendation: ShapeRecommendation, mrange: MRange, m_separator: str = ",") -> list[str]:
    """The backends tied with the range's choice at some of its M values, each with those M values:
    `cublas_ext (M 1,2,4)`."""
    at: dict[str, list[int]] = {}
    for m, others in recommendation.tied.items():
        if mrange.first_m <= m <= mrange.last_m:
            for backend in others:
                at.setdefault(backend, []).append(m)
    return [f"{b} (M {m_separator.join(map(str, ms))})" for b, ms in at.items()]


def _range_ties(recommendation: ShapeRecommendation, mrange: MRange) -> str:
    """The range's ties on one line, as the wide table and Markdown write them."""
    return ", ".join(_tie_items(recommendation, mrange))


def _one_word_a_line(recommendation: ShapeRecommendation, mrange: MRange) -> str:
    """The range's ties one word a line: the cell's narrowest whole width. The wide table keeps every word
    whole where it fits with this cell, since rich narrows the widest column (the ties) first."""
    return "\n".join(_range_ties(recommendation, mrange).split())


def _ties_breaking_at_commas(recommendation: ShapeRecommendation, mrange: MRange) -> str:
    """The range's ties one a line, each free to go on to the next line after any comma of its M values:
    the narrow table's cell, whole in any width that holds a backend's name."""
    return "\n".join(_tie_items(recommendation, mrange, m_separator=", "))


def _recommendation_rows(recommendation: ShapeRecommendation, ties_cell: TiesCell = _range_ties) -> list[list[str]]:
    ranges = recommendation.ranges
    return [
        [
            range_rule(ranges, i),
            r.backend,
            f"{r.first_m}-{r.last_m}" if r.first_m != r.last_m else str(r.first_m),
            ties_cell(recommendation, r),
        ]
        for i, r in enumerate(ranges)
    ]


RECOMMEND_COLUMNS = ["M range", "backend", "measured M", f"tied within {SAME_TOLERANCE:.0%}"]


def simulated_caveat(backends: tuple[str, ...]) -> str:
    """What advice chosen from a test double's made-up times is worth."""
    return (
        f"{', '.join(backends)} only simulates its times (a test double for trying gemmbench without a GPU): "
        "this is not advice; sweep real backends on your GPU to decide"
    )


def throttle_caveat(m_values: tuple[int, ...]) -> str:
    """What a choice made on a throttled row is worth."""
    listed = ", ".join(map(str, m_values))
    return (
        f"throttled at M = {listed}: the GPU's clocks fell during the chosen rows (power or thermal), so these "
        "choices, and any tier they alone make, may be the throttle's; sweep these M again"
    )


def tie_rule() -> str:
    return (
        f"tied: within {SAME_TOLERANCE:.0%} of the fastest (the run-to-run spread); a tie goes to the first of "
        f"{', '.join(PREFERENCE)}, then any other backend by name"
    )


def recommendation_tables(recommendations: list[ShapeRecommendation]) -> WideOrNarrow:
    """Per shape its summary, its table and its caveats; then the rules. The table writes each range's ties
    on one line, wrapping between words (the wide layout), where no word of them need be cut in the console's
    width; else one tie a line, wrapping after the commas of its M values (the narrow layout). All shapes
    share one layout."""
    probes = [_recommendation_table(rec, _one_word_a_line) for rec in recommendations]
    return WideOrNarrow(
        probes,
        wide=_recommendation_parts(recommendations, _range_ties),
        narrow=_recommendation_parts(recommendations, _ties_breaking_at_commas),
    )


def _recommendation_table(recommendation: ShapeRecommendation, ties_cell: TiesCell) -> Table:
    table = Table(pad_edge=False)
    for column in RECOMMEND_COLUMNS:
        table.add_column(column)
    for cells in _recommendation_rows(recommendation, ties_cell):
        table.add_row(*cells)
    return table


def _recommendation_parts(recommendations: list[ShapeRecommendation], ties_cell: TiesCell) -> Group:
    parts: list = []
    for rec in recommendations:
        parts.append(
            Text(f"{rec.model} {rec.gemm} (N={rec.n}, K={rec.k}): {recommendation_summary(rec)}", style="bold")
        )
        parts.append(_recommendation_table(rec, ties_cell))
        for backend, record in rec.excluded.items():
            parts.append(Text(f"  {backend} never qualified: {why_not_qualified(record, rec.tolerance)}", style="dim"))
        if rec.simulated:
            parts.append(Text(f"  {simulated_caveat(rec.simulated)}", style="yellow"))
        if rec.throttled:
            parts.append(Text(f"  {throttle_caveat(rec.throttled)}", style="yellow"))
    if recommendations:
        parts.append(Text(tie_rule(), style="dim"))
        parts.append(
            Text(
                f"qualifies: status ok and rel_err <= {recommendations[0].tolerance:g}; " + _by(recommendations[0]),
                style="dim",
            )
        )
    return Group(*parts)


def _by(recommendation: ShapeRecommendation) -> str:
    """Which figure chose the fastest."""
    if recommendation.in_layer:
        return f"fastest {recommendation.figure}"
    return "fastest by device time (latency where there is none)"


def recommendation_markdown(recommendations: list[ShapeRecommendation]) -> str:
    rows = [
        [f"{rec.model} {rec.gemm}", str(rec.n), str(rec.k), *cells]
        for rec in recommendations
        for cells in _recommendation_rows(rec)
    ]
    figure = [f"figure: {rec.figure}\n" for rec in recommendations[:1] if rec.in_layer]
    figure += [
        f"- {rec.model} {rec.gemm}: {backend} never qualified: {why_not_qualified(record, rec.tolerance)}\n"
        for rec in recommendations
        for backend, record in rec.excluded.items()
    ]
    figure += [
        f"- {rec.model} {rec.gemm}: {simulated_caveat(rec.simulated)}\n" for rec in recommendations if rec.simulated
    ]
    figure += [
        f"- {rec.model} {rec.gemm}: {throttle_caveat(rec.throttled)}\n" for rec in recommendations if rec.throttled
    ]
    return markdown_table(["GEMM", "N", "K", *RECOMMEND_COLUMNS], rows) + (
        "\n" + tie_rule() + "\n" + "".join(figure) if rows else ""
    )
