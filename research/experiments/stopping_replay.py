"""Device-time stopping rules replayed on the raw samples of runs (`sweep --keep-samples`), no GPU needed.

A default sweep spends most of its GPU time sampling CUDA graphs: on an H100 (docs/runs/h100_aa_1.json)
about 28 s of a 63 s sweep, rows taking 192-3,168 replays (a median of 288). A row's interval comes from its
placements' medians, so more replays of a placement narrow it little. This replays other rules on the
samples the runs kept: each placement's samples, in the order taken, are cut where a rule would have stopped
(a rule can only stop earlier than the samples end), and the row's median and interval are recomputed as the
sweep does (`placement_samples`). For each rule it reports the replays and GPU time taken, and, for every
pair of runs, how `compare` judges the rows (faster/slower are the A/A failures).

The samples a row keeps are its placements' samples one placement after another; each placement's
share is found from its stored median (a cut in whole batches whose medians are the placements', the
nearest to equal shares where several fit: `split`). A rule is asked after every batch (EVENTS_BATCH
replays, fewer for graphs of over 1.25 ms a replay): the rule before, of each placement on its own with
its share of the row's minimum time and budget; the rule now (`Target.done_placed`), of the row after
every round of a batch of each placement. The elapsed time a rule sees is the replays' own time.
Runs kept under the rule now hold little more than what it took, so they replay only shorter rules. The
rules take the default target and budget: replay runs made with the default `--target-ci` and `--budget-ms`.

Usage: python research/experiments/stopping_replay.py RUN.json [RUN.json ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from gemmbench.analysis.compare import judge
from gemmbench.analysis.policy import SAME_TOLERANCE
from gemmbench.measure.bench import placement_samples
from gemmbench.records.flags import EAGER_STEADY_CI_REL
from gemmbench.timing.defaults import DEVICE_BUDGET_S, DEVICE_MIN_TIME_S, DEVICE_TARGET_CI_REL
from gemmbench.timing.stopping import MIN_SAMPLES, Target
from gemmbench.timing.timers import EVENTS_BATCH, GRAPH_BATCH_US, MIN_GRAPH_BATCH, graph_unroll

KEY = ("model", "gemm", "m", "backend", "pdl", "context")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    return parser.parse_args(argv)


def split(values: list[float], medians: list[float], step: int = 1) -> list[list[float]] | None:
    """The pooled samples cut into placements whose medians are `medians` (None if no cut fits), each a
    multiple of `step` samples long (the engine asks its rule once a batch). Where several cuts fit (the
    median of a prefix stays put as samples on both sides of it are added, and event times come in steps),
    the one nearest to equal shares is taken: placements sampled in rounds mostly stop together."""
    failed: set[tuple[int, int]] = set()  # (start, placement) with no fitting cut of the rest: no blow-up

    def cut(start: int, index: int) -> list[list[float]] | None:
        if index == len(medians):
            return [] if start == len(values) else None
        if (start, index) in failed:
            return None
        share = (len(values) - start) / (len(medians) - index)
        ends = range(start + MIN_SAMPLES, len(values) + 1)
        if index == len(medians) - 1:  # the last placement takes the rest
            ends = ends[-1:]
        for end in sorted(ends, key=lambda end: abs(end - start - share)):
            if (end - start) % step == 0 and statistics.median(values[start:end]) == medians[index]:
                rest = cut(end, index + 1)
                if rest is not None:
                    return [values[start:end], *rest]
        failed.add((start, index))
        return None

    return cut(0, 0) if medians else ([] if not values else None)


# A rule: given a row's placements' samples in order, the replay time and the batch (replays of one
# placement between two synchronisations), how many samples of each placement it takes.
Rule = Callable[[list[list[float]], float, int], list[int]]


def by_placement(rule_of: Callable[[int], Target]) -> Rule:
    """The rule before rows were judged whole: each placement sampled until its own interval met the
    target, with its share of the row's minimum time and budget."""

    def taken(placed: list[list[float]], replay_us: float, batch: int) -> list[int]:
        rule = rule_of(len(placed))
        counts = []
        for samples in placed:
            ends = [min(end, len(samples)) for end in range(batch, len(samples) + batch, batch)]
            counts.append(next((n for n in ends if rule.done(samples[:n], n * replay_us * 1e-6)), len(samples)))
        return counts

    return taken


def by_row(rule: Target) -> Rule:
    """`Target.done_placed`, asked after every round of one batch of each placement, as the engine asks it."""

    def taken(placed: list[list[float]], replay_us: float, batch: int) -> list[int]:
        longest = max(map(len, placed))
        for end in [*range(batch, longest, batch), longest]:  # the last: every sample kept
            cut = [samples[:end] for samples in placed]
            if end == longest or rule.done_placed(cut, sum(map(len, cut)) * replay_us * 1e-6):
                return list(map(len, cut))

    return taken


RULES: dict[str, Rule] = {
    "as kept": lambda placed, _replay, _batch: list(map(len, placed)),
    "each placement (before)": by_placement(
        lambda parts: Target(DEVICE_TARGET_CI_REL, DEVICE_BUDGET_S / parts, DEVICE_MIN_TIME_S / parts)
    ),
    "the row (Target now)": by_row(Target()),
    "one batch": lambda placed, _replay, batch: [min(len(p), batch) for p in placed],
    "two batches": lambda placed, _replay, batch: [min(len(p), 2 * batch) for p in placed],
}


def rows_of(path: Path) -> dict[tuple, tuple[list[list[float]], float, int, bool]]:
    """Each timed row's placements' samples, its replay time, its batch and whether `compare` flags it
    whatever the device rule (its eager latency noisy, or throttled), by row key."""
    rows = {}
    for record in json.loads(path.read_text())["records"]:
        values, medians = record.get("device_samples_us"), record.get("device_placement_medians_us")
        if record.get("status") != "ok" or not values or not medians:
            continue
        per_call = record["device_median_us"]
        replay_us = per_call * graph_unroll(per_call, record.get("l2_copies") or 1)
        batch = max(MIN_GRAPH_BATCH, min(EVENTS_BATCH, int(GRAPH_BATCH_US / replay_us)))
        placed = split(list(values), list(medians), batch) or split(list(values), list(medians))
        if placed is None:
            continue
        low, high, middle = (record.get(f"latency_{f}_us") for f in ("ci_low", "ci_high", "median"))
        latency_noisy = bool(middle) and low is not None and not (high - low) / 2 / middle <= EAGER_STEADY_CI_REL
        flagged = latency_noisy or bool(record.get("throttled"))
        rows[tuple(record.get(f) for f in KEY)] = placed, replay_us, batch, flagged
    return rows


def replayed(rows: dict, rule: Rule) -> tuple[dict, int, float]:
    """Each row's summary under `rule`, and the replays and GPU seconds it took."""
    summaries, replays, seconds = {}, 0, 0.0
    for key, (placed, replay_us, batch, _flagged) in rows.items():
        cut = [p[:count] for p, count in zip(placed, rule(placed, replay_us, batch), strict=True)]
        replays += sum(map(len, cut))
        seconds += sum(map(len, cut)) * replay_us * 1e-6
        summaries[key] = placement_samples([tuple(p) for p in cut], Target().target_ci_rel)
    return summaries, replays, seconds


def main() -> None:
    runs = [rows_of(path) for path in parse_args().runs]
    print(f"rows with kept samples: {', '.join(str(len(r)) for r in runs)}")
    print("| rule | replays per run | GPU s per run | noisy per run | verdicts per pair (faster+slower / noisy) |")
    print("|---|---|---|---|---|")
    for name, rule in RULES.items():
        results = [replayed(rows, rule) for rows in runs]
        verdicts = []
        for (i, (a, _, _)), (j, (b, _, _)) in itertools.combinations(enumerate(results), 2):
            counts = Counter(
                judge(
                    b[k].median_us / a[k].median_us,
                    a[k].interval_us,
                    b[k].interval_us,
                    a[k].noisy or b[k].noisy or runs[i][k][3] or runs[j][k][3],
                    SAME_TOLERANCE,
                )
                for k in a.keys() & b.keys()
            )
            verdicts.append(f"{counts['faster'] + counts['slower']} / {counts['noisy']}")
        noisy = [sum(s.noisy for s in summaries.values()) for summaries, _, _ in results]
        cells = [
            name,
            ", ".join(str(r) for _, r, _ in results),
            ", ".join(f"{s:.1f}" for _, _, s in results),
            ", ".join(map(str, noisy)),
            "; ".join(verdicts) or "-",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
