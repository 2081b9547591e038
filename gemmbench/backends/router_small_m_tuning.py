"""Which configuration router_small_m runs for a (GPU, N, K, M bucket), and where it came from.

In order: the user's cache of tunings made on this machine (exact GPU model, torch and Triton); else a
tuning file for this GPU model, the user's own (`<cache>/tunings/*.json`, as `gemmbench tune` writes them)
before those shipped with gemmbench (`gemmbench/backends/tunings/`); else, in the backend's `tune`, tuned
now (every candidate timed by the session's timer: cold-L2 CUDA-graph device time, as a cold sweep times
it) and cached; else, where the backend is prepared without a `tune`, an untuned default that nothing
times (`UNTUNED_CONFIG`). A tuning file holds, per shape and M bucket, the winning configuration and its
margin over the runner-up.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import torch

from gemmbench.backends.base import CACHED, FROM_FILE, TUNED_NOW, UNTUNED, CandidateTimer, GemmInputs, time_candidates
from gemmbench.backends.router_small_m_kernel import TENSOR_CORES, Config, block_m, candidates, compile_all, prepared
from gemmbench.cache import cache_root, read_cache_entry, read_json_cache, read_json_object, write_cache_entry
from gemmbench.spec.cases import Case

# Tuning times every candidate briefly, then the closest for longer. The first pass's time per
# candidate is about 25 replays of a 200 us graph; a candidate more than PRUNE_MARGIN slower than the
# best there is not timed again (candidates of one M bucket spread 1.2-3x). The second pass's time per
# candidate: a stable median of a ~2-10 us kernel. On an H200 the pruned tuning picked the exhaustive
# one's winner at 23 of 29 shapes and buckets, and one within 1.4% of it at the other six.
FIRST_PASS_BUDGET_S = 0.005
PRUNE_MARGIN = 1.15
TUNE_BUDGET_S = 0.02
CACHE_FILE = "router_small_m.json"
SHIPPED_TUNINGS = Path(__file__).resolve().parent / "tunings"
USER_TUNINGS = "tunings"  # a folder of the cache root
# What `prepare` runs where nothing chose a configuration (called without `tune`, nothing cached or in a
# tuning file), so that it never times: of the configurations every M bucket has (tensor cores), the one
# the shipped tuning files have most often (17 of the H200's 84 entries, 14 of the H100's). Deterministic
# and reasonable; not tuned.
UNTUNED_CONFIG = Config(TENSOR_CORES, 32, 256, 512)
_CONFIG_FIELDS = tuple(f.name for f in fields(Config))


@dataclass(frozen=True)
class Choice:
    config: Config
    source: str  # CACHED, FROM_FILE (with the file's name), TUNED_NOW or UNTUNED

    @property
    def tuned(self) -> bool:
        """Whether a tuning chose it (now, cached or in a file), rather than the untuned default."""
        return self.source != UNTUNED


@dataclass(frozen=True)
class Tuned:
    """A fresh tuning: the winner, its device time, and the runner-up's time over it (1.0: no runner-up)."""

    config: Config
    time_us: float
    margin: float

    def entry(self) -> dict:
        """As a cache or tuning file holds it."""
        return {**asdict(self.config), "time_us": self.time_us, "margin": self.margin}


def shape_key(case: Case) -> str:
    return f"N={case.n}|K={case.k}|M<={block_m(case.m)}"


def cache_key(case: Case, device: torch.device) -> str:
    """What a cached tuning depends on: the GPU model, torch, Triton, and the shape and M bucket."""
    import triton

    return (
        f"{torch.cuda.get_device_name(device)}|torch {torch.__version__}|triton {triton.__version__}|{shape_key(case)}"
    )


def _config_of(entry) -> Config | None:
    """The configuration an entry of a cache or tuning file describes; None for one it does not (older)."""
    try:
        return Config(**{name: entry[name] for name in _CONFIG_FIELDS if name in entry})
    except (KeyError, TypeError):
        return None


def cached_config(key: str) -> Config | None:
    """The configuration cached for `key`, or None (also where the cache file is torn: `cache_problem`)."""
    return _config_of(read_cache_entry(CACHE_FILE, key) or {})


def cache_problem() -> str | None:
    return read_json_cache(CACHE_FILE)[1]


def write_cache(key: str, tuned: Tuned) -> None:
    """Cache a fresh tuning: the winner, its time and its margin over the runner-up."""
    write_cache_entry(CACHE_FILE, key, tuned.entry())


def tuning_files() -> list[Path]:
    """The tuning files looked in, the user's first (theirs win over the shipped ones)."""
    user = sorted((cache_root() / USER_TUNINGS).glob("*.json"))
    return user + sorted(SHIPPED_TUNINGS.glob("*.json"))


def file_config(gpu: str, case: Case) -> tuple[Config, Path] | None:
    """The configuration a tuning file gives for `case` on a GPU named `gpu`, and the file; None if none
    does. A file that cannot be read, and an entry that is not one of the kernel's configurations for this
    M, are skipped: the kernel is then tuned, as without them."""
    for path in tuning_files():
        content, _ = read_json_object(path)
        configs = content.get("configs")
        if content.get("gpu") != gpu or not isinstance(configs, dict):
            continue
        entry = configs.get(shape_key(case))
        config = _config_of(entry) if isinstance(entry, dict) else None
        if config is not None and config in candidates(case.m):
            return config, path
    return None


def lookup(case: Case, device: torch.device) -> Choice | None:
    """The configuration cached for `case` on `device`, else the one a tuning file has; None where neither
    has one (then `choose` tunes). A query: nothing is timed."""
    cached = cached_config(cache_key(case, device))
    if cached is not None:
        return Choice(cached, CACHED)
    found = file_config(torch.cuda.get_device_name(device), case)
    if found is not None:
        config, path = found
        return Choice(config, f"{FROM_FILE} {path.name}")
    return None


def without_tuning(case: Case, device: torch.device) -> Choice:
    """What runs `case` where nothing tunes it: `lookup`'s choice, else the untuned default. Nothing is timed."""
    return lookup(case, device) or Choice(UNTUNED_CONFIG, UNTUNED)


def choose(case: Case, inputs: GemmInputs, timer: CandidateTimer) -> Choice:
    """The configuration for `case` on the inputs' device: looked up (`lookup`), else tuned now with `timer`
    and cached."""
    return lookup(case, inputs.x.device) or Choice(tune_and_cache(case, inputs, timer).config, TUNED_NOW)


def tune_and_cache(case: Case, inputs: GemmInputs, timer: CandidateTimer) -> Tuned:
    """`tune`, its result written to the user's cache, where sweeps on this machine find it first."""
    tuned = tune(case, inputs, timer)
    write_cache(cache_key(case, inputs.x.device), tuned)
    return tuned


def tune(case: Case, inputs: GemmInputs, timer: CandidateTimer) -> Tuned:
    """The candidate with the lowest CUDA-graph device time with a cold L2 (`timer`'s rotating copies, as a
    cold sweep times it): where the weight comes from DRAM, the bytes in flight decide, not the hot case's.
    Every candidate is compiled first on `inputs`, all at once, then timed briefly; those within
    PRUNE_MARGIN of the best are timed again, longer, and the winner and its margin come from that second
    pass."""
    failed = compile_all(inputs, candidates(case.m))
    first = candidate_times(timer, [c for c in candidates(case.m) if c not in failed], FIRST_PASS_BUDGET_S)
    if not first:
        raise RuntimeError("no configuration of router_small_m runs on this GPU")
    fastest = min(first.values())
    times = candidate_times(timer, [c for c, t in first.items() if t <= PRUNE_MARGIN * fastest], TUNE_BUDGET_S)
    ranked = sorted(times, key=times.get)
    best = times[ranked[0]]
    margin = times[ranked[1]] / best if len(ranked) > 1 else 1.0
    return Tuned(ranked[0], best, margin)


def candidate_times(timer: CandidateTimer, configs: list[Config], budget_s: float) -> dict[Config, float]:
    """Median device time (us) by `timer` of each of `configs` this GPU runs (registers, shared memory),
    sampling each for `budget_s`."""
    return time_candidates(timer, {config: functools.partial(prepared, config=config) for config in configs}, budget_s)


def software() -> str:
    """What a tuning was made with, for a tuning file."""
    import triton

    return f"gemmbench's router_small_m candidates, torch {torch.__version__}, triton {triton.__version__}"


def tuning_file(gpu: str, tuned: dict[str, Tuned], made_with: str) -> dict:
    """The content of a tuning file for `gpu`: per shape key, the winner, its time and margin."""
    return {
        "gpu": gpu,
        "tuned_with": made_with,
        "tuned_on": f"{platform.node()}, {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        "configs": {key: t.entry() for key, t in tuned.items()},
    }


def default_tuning_path(gpu: str) -> Path:
    """Where `gemmbench tune` writes by default: the user's tuning files, looked in from then on."""
    name = "".join(c if c.isalnum() else "-" for c in gpu).strip("-").lower()
    return cache_root() / USER_TUNINGS / f"router_small_m_{name}.json"
