"""The recommendation per GEMM shape (`gemmbench recommend`): rich tables, Markdown and JSON."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gemmbench.analysis.policy import (
    FALLBACK_BACKEND,
    PREFERENCE,
    SAME_TOLERANCE,
)
from gemmbench.analysis.recommend import MRange, Saving, ShapeRecommendation
from gemmbench.output.format import WideOrNarrow, format_us, markdown_table
from gemmbench.records import OK, Record, after_context


def range_rule(ranges: list[MRange], index: int) -> str:
    """The dispatch rule of `ranges[index]`: "M <= 8" or "8 < M <= 64". The last range ends at the largest M
    measured: above it nothing was (a specialised backend may not even run there), as `--python` returns
    None there."""
    last = ranges[index].last_m
    if index == 0:
        return f"M <= {last}"
    return f"{ranges[index - 1].last_m} < M <= {last}"


def recommendation_summary(recommendation: ShapeRecommendation) -> str:
    ranges = recommendation.ranges
    return "; ".join(f"{range_rule(ranges, i)}: {r.backend}" for i, r in enumerate(ranges)) or "no backend qualified"


def view_title(rec: ShapeRecommendation) -> str:
    """The GEMM and the view its choice was made in: alone, or per layer after a producer."""
    where = f", per layer after {rec.context}" if rec.context else ""
    return f"{rec.model} {rec.gemm} (N={rec.n}, K={rec.k}{where})"


def saving_text(saving: Saving) -> str:
    """`2.10 µs (1.9-2.3, 25%), 122 µs a forward pass (58 calls)`, or where its interval reaches zero, the
    median only, said to be unresolved: a difference is never shown as a negative time."""
    share = f"{saving.share:.0%}"
    if saving.low_us > 0:
        text = f"{format_us(saving.us)} ({format_us(saving.low_us)}-{format_us(saving.high_us)}, {share})"
    else:
        text = f"{format_us(saving.us)} ({share}; within the two rows' intervals, not resolved)"
    if saving.forward_us is not None:
        text += f", {format_us(saving.forward_us)} a forward pass ({saving.per_forward} calls)"
    return text


def _range_savings(rec: ShapeRecommendation, mrange: MRange) -> str:
    """What the range's choice saves against the fallback at each of its M values, `M: saving` a line."""
    savings = [rec.savings[m] for m in sorted(rec.savings) if mrange.first_m <= m <= mrange.last_m]
    return "\n".join(f"M {s.m}: {saving_text(s)}" for s in savings)


def why_not_qualified(record: Record, tolerance: float, max_flips: float | None = None) -> str:
    if record.status != OK:
        return f"{record.status}: {record.reason}"
    if record.rel_err is None:
        return "no relative error recorded"
    if record.rel_err > tolerance:
        return f"rel_err {record.rel_err:.1e} > {tolerance:g}"
    if max_flips is not None and record.routed and record.topk_mismatch is None:
        return "no routing check recorded"
    if max_flips is not None and record.topk_mismatch > max_flips:
        return f"top-k≠ {record.topk_mismatch:.2%} > {max_flips:.2%}"
    return "not timed"


def why_not(rec: ShapeRecommendation, record: Record) -> str:
    """Why a backend of `rec` never qualified, by `rec`'s qualification."""
    return why_not_qualified(record, rec.tolerance, rec.max_flips)


def error_lines(rec: ShapeRecommendation) -> list[str]:
    """One line per backend that qualified elsewhere but errored at some M: the choice there is another's."""
    return [
        f"{backend} errored at M = {', '.join(map(str, ms))} (another backend chosen there): {reason}"
        for backend, (ms, reason) in rec.errors_by_backend().items()
    ]


def recommendation_dicts(recommendations: list[ShapeRecommendation]) -> list[dict]:
    """The recommendations as `recommend --json` writes them: every field, each range's rule, a summary."""
    return [
        {
            "model": rec.model,
            "gemm": rec.gemm,
            "n": rec.n,
            "k": rec.k,
            "tolerance": rec.tolerance,
            "max_flips": rec.max_flips,
            "ranges": [
                {"first_m": r.first_m, "last_m": r.last_m, "backend": r.backend, "rule": range_rule(rec.ranges, i)}
                for i, r in enumerate(rec.ranges)
            ],
            "winners": rec.winners,
            "tied": rec.tied,
            "excluded": {backend: why_not(rec, record) for backend, record in rec.excluded.items()},
            "errored": {b: {"m": ms, "reason": why} for b, (ms, why) in rec.errors_by_backend().items()},
            "summary": recommendation_summary(rec),
            "figure": rec.figure,
            "context": rec.context,
            "savings": {
                m: {
                    "against": v.against,
                    "us": v.us,
                    "ci_low_us": v.low_us,
                    "ci_high_us": v.high_us,
                    "share": v.share,
                    "per_forward": v.per_forward,
                    "forward_us": v.forward_us,
                }
                for m, v in rec.savings.items()
            },
            "throttled_m": list(rec.throttled),
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


def _recommendation_rows(
    recommendation: ShapeRecommendation, ties_cell: TiesCell = _range_ties, savings: bool = True
) -> list[list[str]]:
    ranges = recommendation.ranges
    return [
        [
            range_rule(ranges, i),
            r.backend,
            f"{r.first_m}-{r.last_m}" if r.first_m != r.last_m else str(r.first_m),
            ties_cell(recommendation, r),
            *([_range_savings(recommendation, r)] if savings else []),
        ]
        for i, r in enumerate(ranges)
    ]


RECOMMEND_COLUMNS = [
    "M range",
    "backend",
    "measured M",
    f"tied within {SAME_TOLERANCE:.0%}",
    f"saves against {FALLBACK_BACKEND}",
]


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
        narrow=_recommendation_parts(recommendations, _ties_breaking_at_commas, savings_column=False),
    )


def _recommendation_table(recommendation: ShapeRecommendation, ties_cell: TiesCell, savings: bool = True) -> Table:
    table = Table(pad_edge=False)
    for column in RECOMMEND_COLUMNS if savings else RECOMMEND_COLUMNS[:-1]:
        table.add_column(column, overflow="fold")  # a backend's name folds, whole, rather than lose its end
    for cells in _recommendation_rows(recommendation, ties_cell, savings):
        table.add_row(*cells)
    return table


def _savings_lines(recommendation: ShapeRecommendation) -> list[Text]:
    """What each choice saves, a line each under the table: the narrow layout's, whose table has no room
    for a fifth column with every backend's name whole in 80 columns."""
    return [
        Text(
            f"  {recommendation.winners[m]} at M {m} saves against {saving.against}: {saving_text(saving)}",
            style="dim",
        )
        for m, saving in sorted(recommendation.savings.items())
    ]


def _recommendation_parts(
    recommendations: list[ShapeRecommendation], ties_cell: TiesCell, savings_column: bool = True
) -> Group:
    parts: list = []
    for rec in recommendations:
        parts.append(Text(f"{view_title(rec)}: {recommendation_summary(rec)}", style="bold"))
        parts.append(_recommendation_table(rec, ties_cell, savings_column))
        if not savings_column:
            parts += _savings_lines(rec)
        for backend, record in rec.excluded.items():
            parts.append(
                Text(
                    f"  {backend} never qualified: {why_not(rec, record)}",
                    style="dim",
                )
            )
        parts += [Text(f"  {line}", style="yellow") for line in error_lines(rec)]
        if rec.throttled:
            parts.append(Text(f"  {throttle_caveat(rec.throttled)}", style="yellow"))
    if recommendations:
        parts.append(Text(tie_rule(), style="dim"))
        parts.append(Text(qualification(recommendations[0].tolerance, recommendations[0].max_flips), style="dim"))
    return Group(*parts)


def qualification(tolerance: float, max_flips: float | None = None) -> str:
    """How the choice is made, and what a saving is."""
    routing = "" if max_flips is None else f" and top-k≠ <= {max_flips:.2%}"
    return (
        f"qualifies: status ok and rel_err <= {tolerance:g}{routing}; fastest by device time (eager latency where "
        "there is none), of the GEMM alone, or of its whole layer (producer then GEMM) after a producer; saves: the "
        f"fallback's time ({FALLBACK_BACKEND}, the tier after a specialised one) minus the choice's, measured "
        "in the same rounds, with the interval from both rows' 95% intervals, and times the GEMM's calls per "
        "forward pass where the preset gives them"
    )


def recommendation_markdown(recommendations: list[ShapeRecommendation]) -> str:
    rows = [
        [f"{rec.model} {rec.gemm}{after_context(rec.context)}", str(rec.n), str(rec.k), *cells]
        for rec in recommendations
        for cells in _recommendation_rows(rec)
    ]
    rows = [[cell.replace("\n", "; ") for cell in row] for row in rows]
    figure = (
        [qualification(recommendations[0].tolerance, recommendations[0].max_flips) + "\n"] if recommendations else []
    )
    figure += [
        f"- {rec.model} {rec.gemm}: {backend} never qualified: {why_not(rec, record)}\n"
        for rec in recommendations
        for backend, record in rec.excluded.items()
    ]
    figure += [f"- {rec.model} {rec.gemm}: {line}\n" for rec in recommendations for line in error_lines(rec)]
    figure += [
        f"- {rec.model} {rec.gemm}: {throttle_caveat(rec.throttled)}\n" for rec in recommendations if rec.throttled
    ]
    return markdown_table(["GEMM", "N", "K", *RECOMMEND_COLUMNS], rows) + (
        "\n" + tie_rule() + "\n" + "".join(figure) if rows else ""
    )
