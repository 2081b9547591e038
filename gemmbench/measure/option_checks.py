"""The options `plan_sweep` takes, checked again for the Python API: the command line bounds them for itself
(cli/options.py), but a script calling `gemmbench.sweep` may pass anything, and a bad value must raise a
UsageError before any work."""

from __future__ import annotations

from os import PathLike

from gemmbench.errors import UsageError
from gemmbench.timing.defaults import (
    MAX_BUDGET_MS,
    MAX_TARGET_CI_PCT,
    MAX_WARMUP_MS,
    MIN_BUDGET_MS,
    MIN_TARGET_CI_PCT,
)
from gemmbench.timing.inputs import MAX_COLD_COPIES

# torch.Generator.manual_seed takes a signed 64-bit seed, and the sweep adds up to a copy's index (and one,
# for a context's hidden states) to it.
MAX_SEED = 2**63 - 1 - MAX_COLD_COPIES - 1


def check_kinds(**options: tuple[object, tuple[type, ...]]) -> None:
    """Options of the Python API, each `(value, the types it may have)`; None is always allowed (the
    default). A value of another type is a UsageError, not a TypeError from deep inside."""
    for name, (value, kinds) in options.items():
        if value is not None and not isinstance(value, kinds):
            wanted = " or ".join(kind.__name__ for kind in kinds)
            raise UsageError(f"{name} = {value!r} is of type {type(value).__name__}, not {wanted}", f"pass {wanted}")


def check_lists(**lists) -> dict[str, list]:
    """The list options the Python API takes (of strings; configs: of paths too), as lists: None is an empty
    list (the default), any iterable is read once (a generator too); a string is refused, being a sequence
    too whose characters would be taken one by one."""
    checked = {}
    for name, value in lists.items():
        if isinstance(value, str):
            items = [item.strip() for item in value.split(",")]  # "a,b": as the command line would split it
            raise UsageError(f"{name} = {value!r} is a string, not a list", f"pass {name}={items!r}")
        try:
            checked[name] = [] if value is None else list(value)
        except TypeError:
            raise UsageError(f"{name} = {value!r} is not a list", f"pass {name}=[...]") from None
        kinds = (str, PathLike) if name == "configs" else (str,)
        for item in checked[name]:
            check_kinds(**{f"{name} item": (item, kinds)})
    return checked


def check_options(seed, hot, kernels, remeasure_roofline, keep_samples, target_ci_pct, budget_ms, warmup_ms) -> None:
    """The options the command line bounds for itself, checked again for the Python API."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < MAX_SEED:
        raise UsageError(f"seed {seed!r} is not an integer from 0 to {MAX_SEED - 1}", "give a seed in that range")
    flags = {"hot": hot, "kernels": kernels, "remeasure_roofline": remeasure_roofline, "keep_samples": keep_samples}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise UsageError(f"{name} = {value!r} is not True or False", f"pass {name}=True or {name}=False")
    bounded = (
        ("target_ci_pct", target_ci_pct, MIN_TARGET_CI_PCT, MAX_TARGET_CI_PCT),
        ("budget_ms", budget_ms, MIN_BUDGET_MS, MAX_BUDGET_MS),
        ("warmup_ms", 0.0 if warmup_ms is None else warmup_ms, 0.0, MAX_WARMUP_MS),
    )
    for name, value, lowest, most in bounded:
        if not _is_number(value) or not lowest <= value <= most:
            raise UsageError(f"{name} = {value!r} is not a number from {lowest:g} to {most:g}", "give one in range")


def check_count(name: str, value, most: int, default: str) -> None:
    """An optional count the Python API takes (the command line bounds its own): None, or 1 to `most`."""
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise UsageError(
            f"{name} = {value!r} is not an integer from 1 to {most}", f"give {name} in that range, or {default}"
        )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
