"""The progress bar of a session, on stderr, and the label of the step in hand."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gemmbench.spec.steps import MEASURE, Step


def progress(console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=True,
    )


def step_label(step: Step) -> str:
    """A progress bar's description of the step in hand."""
    label = f"{step.model} {step.gemm} M={step.m} · {step.backend}"
    return label if step.phase == MEASURE else f"kernels: {label}"
