"""Where a sweep's wall time goes, phase by phase: a gemmbench command run in this process with its main
phases wrapped by wall-clock counters (outermost calls only, so nested phases are not counted twice
within one phase; a phase's time includes the phases it calls). cProfile's cumulative times came out
broken for the generator-driven session (time_units missing), and its overhead doubled the event
recording; this costs a few microseconds per wrapped call.

Usage: python research/checks/sweep_phases.py OUT_FILE sweep [gemmbench sweep options]
Writes a markdown table of phase, calls and seconds to OUT_FILE and prints it to stderr.
"""

from __future__ import annotations

import argparse
import functools
import runpy
import sys
import time
from collections import defaultdict
from pathlib import Path

PHASES = [  # (module, attribute path): what is timed
    ("gemmbench.measure.roofline", "for_device"),
    ("gemmbench.timing.clocks", "warm_device"),
    ("gemmbench.measure.bench", "load_backends"),
    ("gemmbench.measure.points", "compile_ahead"),
    ("gemmbench.measure.points", "_measure_case"),
    ("gemmbench.measure.points", "placed_copies"),
    ("gemmbench.measure.points", "reference"),
    ("gemmbench.timing.inputs", "make_inputs"),
    ("gemmbench.measure.points", "tune_for_case"),
    ("gemmbench.measure.points", "_checked_layers"),
    ("gemmbench.measure.points", "_routing"),
    ("gemmbench.measure.bench", "Bench.time_units"),
    ("gemmbench.measure.bench", "Bench.warm_up"),
    ("gemmbench.measure.bench", "Bench.eager_latency"),
    ("gemmbench.timing.clocks", "resettle_device"),
    ("gemmbench.measure.bench", "Bench._capture"),
    ("gemmbench.timing.timers", "fit_graph_unroll"),
    ("gemmbench.timing.timers", "capture_graph"),
    ("gemmbench.timing.timers", "time_placed_graphs"),
    ("gemmbench.timing.timers", "_replay_us"),
    ("gemmbench.timing.timers", "_event_batch"),
    ("gemmbench.timing.stopping", "Target.done_placed"),
    ("gemmbench.measure.points", "profile_records"),
    ("gemmbench.timing.profile", "capture_many"),
    ("gemmbench.timing.profile", "group_by_call"),
    ("gemmbench.backends.cublas_ext", "_fastest_algorithm"),
    ("gemmbench.backends.router_small_m_tuning", "lookup"),
    ("gemmbench.measure.routing", "RoutingCheck.for_case"),
    ("gemmbench.measure.routing", "RoutingCheck.measure"),
    ("gemmbench.records.runfile", "RunWriter.flush"),
]

seconds: dict[str, float] = defaultdict(float)
calls: dict[str, int] = defaultdict(int)
active: set[str] = set()


def timed(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if name in active:
            return fn(*args, **kwargs)
        active.add(name)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - start
            calls[name] += 1
            active.discard(name)

    return wrapper


def install() -> None:
    import importlib

    for module_name, path in PHASES:
        owner = importlib.import_module(module_name)
        *parents, attribute = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        raw = owner.__dict__.get(attribute, getattr(owner, attribute, None))
        if raw is None:
            print(f"sweep_phases: no {module_name}.{path}", file=sys.stderr)
            continue
        name = f"{module_name.rsplit('.', 1)[-1]}.{path}"
        if isinstance(raw, staticmethod | classmethod):
            setattr(owner, attribute, type(raw)(timed(name, raw.__func__)))
        else:
            setattr(owner, attribute, timed(name, raw))
    # Modules that imported a wrapped function by name before it was wrapped keep the original: rebind.
    rebound = ("session", "bench", "roofline", "points", "groups", "group_calls")  # roofline: its warm_device
    for module_name in ("gemmbench.cli.run", *(f"gemmbench.measure.{name}" for name in rebound)):
        module = importlib.import_module(module_name)
        for other_module, path in PHASES:
            if "." not in path and hasattr(module, path):
                setattr(module, path, getattr(importlib.import_module(other_module), path))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_file", type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="a gemmbench command and its options")
    return parser.parse_args(argv)


def main() -> int:
    parsed = parse_args()
    out_file, args = parsed.out_file, parsed.command
    started = time.perf_counter()
    install()
    imported = time.perf_counter() - started
    sys.argv = ["gemmbench", *args]
    code = 0
    try:
        runpy.run_module("gemmbench", run_name="__main__")
    except SystemExit as exc:
        code = exc.code or 0
    total = time.perf_counter() - started
    lines = [
        "| phase | calls | s |",
        "|---|---|---|",
        f"| import gemmbench (before the command) | 1 | {imported:.2f} |",
    ]
    lines += [f"| {name} | {calls[name]} | {seconds[name]:.2f} |" for name in seconds]
    lines.append(f"| whole command (exit {code}) | 1 | {total:.2f} |")
    out_file.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
