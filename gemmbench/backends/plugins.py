"""Backends of your own: plugins, loaded from `--plugin MODULE_OR_FILE` or from installed packages that
declare an entry point in the `gemmbench.backends` group. docs/plugins.md says how to write one.

A plugin is a Python module with a module-level `BACKENDS`: a list of `gemmbench.backends.Backend`
instances (an entry point may also name the list itself). Each backend goes through the same pipeline as
the built-in ones: availability, correctness against float64, both timers, cold L2, the kernel pass,
routing accuracy, recommend. Loading checks the contract once, so that a broken plugin is one `Error:`
line naming it, never a traceback halfway through a sweep.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

from gemmbench.backends.base import Backend
from gemmbench.backends.producers import PRODUCERS, Producer, context_names
from gemmbench.backends.registry import REGISTRY
from gemmbench.errors import BACKEND_FAILURES, GemmbenchError, described

ENTRY_POINT_GROUP = "gemmbench.backends"
# A backend name goes into tables, file names and --backend lists: letters, digits, _ . - only.
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_FIX_CONTRACT = "see docs/plugins.md for what a plugin provides"
_FIX_PLUGIN = "fix the plugin, or leave it out"


@dataclass(frozen=True)
class _Source:
    """Where a plugin comes from: `origin` names it in messages and in `gemmbench list`; `key` is the same
    for two spellings of one file; `stamp` changes when a file is edited (None: a module, loaded once)."""

    origin: str
    key: str
    stamp: Hashable
    load: Callable[[], object]
    fix: str = _FIX_PLUGIN


@dataclass(frozen=True)
class _Registered:
    stamp: Hashable
    backends: list[Backend]
    producers: list[Producer]


# What each source registered, by its key: a plugin is loaded once per process, and again where its file
# was edited since (a notebook that reruns a sweep after changing the plugin gets the new code).
_loaded: dict[str, _Registered] = {}


def load_plugins(specs: list[str] = (), entry_points: bool = True) -> list[Backend]:
    """Load the plugins named in `specs` (module names or .py files) and, unless told not to, those of
    installed packages; register their backends and producers. Returns the backends loaded. Raises
    GemmbenchError, having registered nothing of the plugin at fault."""
    sources = [_source_of(spec) for spec in specs]
    if entry_points:
        sources += [_entry_point_source(point) for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    backends: list[Backend] = []
    for source in sources:
        registered = _loaded.get(source.key)
        if registered is None or registered.stamp != source.stamp:
            if registered is not None:
                _unregister(_loaded.pop(source.key))
            registered = _loaded[source.key] = _register(source, *_contents_of(source))
        backends += [b for b in registered.backends if b not in backends]
    return backends


def _source_of(spec: str) -> _Source:
    """A plugin named on the command line: a .py file, or a module by dotted name (`mypackage.backends`)."""
    path, origin = Path(spec), f"plugin {spec}"
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise GemmbenchError(f"{origin}: no such file", "check the path (a plugin is a .py file or a module name)")
        stamp = (path.stat().st_mtime_ns, path.stat().st_size)
        return _Source(origin, str(path.resolve()), stamp, lambda: _import_file(path))
    return _Source(origin, f"module {spec}", None, lambda: importlib.import_module(spec))


def _entry_point_source(point: importlib.metadata.EntryPoint) -> _Source:
    """An installed package's plugin: the fix of its errors names the package to mend or uninstall."""
    package = point.dist.name if point.dist else None
    fix = f"fix or uninstall the package that declares it (pip uninstall {package})" if package else _FIX_PLUGIN
    origin = f"entry point {point.name} ({point.value})"
    return _Source(origin, origin, None, point.load, fix)


def _import_file(path: Path):
    """A module from a .py file, under a name of its own (dataclasses and pickling look modules up by name)."""
    name = "gemmbench_plugin_" + re.sub(r"\W", "_", path.stem)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None:  # Python knows no loader for the file: not a .py file
        raise ImportError(f"{path} is not a Python file (a plugin is a .py file or an importable module)")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def _contents_of(source: _Source) -> tuple[list, list]:
    """The plugin's BACKENDS and PRODUCERS lists (either may be absent, not both)."""
    origin = source.origin
    try:
        loaded = source.load()
    except BACKEND_FAILURES as exc:  # any failure to import a plugin (a sys.exit too) is that plugin's error
        what = f"{origin} failed to import: {described(exc)}"
        raise GemmbenchError(what, source.fix) from None
    backends = loaded if isinstance(loaded, (list, tuple)) else getattr(loaded, "BACKENDS", None)
    producers = [] if isinstance(loaded, (list, tuple)) else getattr(loaded, "PRODUCERS", [])
    if not isinstance(producers, (list, tuple)):
        raise GemmbenchError(f"{origin}: PRODUCERS is not a list of producers", _FIX_CONTRACT)
    if backends is None and producers:
        return [], list(producers)
    if not isinstance(backends, (list, tuple)) or not backends:
        raise GemmbenchError(f"{origin} defines no BACKENDS list of backends", _FIX_CONTRACT)
    return list(backends), list(producers)


def _register(source: _Source, backends: list, producers: list) -> _Registered:
    """Check every backend's and producer's contract and name, then register them all (or none)."""
    contract = [*map(contract_problem, backends), *map(_producer_problem, producers)]
    if problem := next(filter(None, contract), None):
        raise GemmbenchError(f"{source.origin}: {problem}", _FIX_CONTRACT)
    if problem := _taken(backends, REGISTRY, "backend") or _taken(producers, context_names(), "context"):
        raise GemmbenchError(f"{source.origin}: {problem}", "give it another name")
    for producer in producers:
        producer.origin = source.origin
        PRODUCERS[producer.name] = producer
    for backend in backends:
        backend.origin = source.origin
        REGISTRY.register(backend)
    return _Registered(source.stamp, backends, producers)


def _unregister(registered: _Registered) -> None:
    """Take back what a plugin registered (its file was edited: it is loaded again)."""
    for backend in registered.backends:
        REGISTRY.unregister(backend.name)
    for producer in registered.producers:
        PRODUCERS.pop(producer.name, None)


def _taken(items: list, names, kind: str) -> str | None:
    """Where one of the plugin's names is taken already, or twice in the plugin: the problem, else None."""
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            return f"the {kind} name '{item.name}' is taken (twice in this plugin)"
        if item.name in names:
            taken_by = REGISTRY[item.name].origin if kind == "backend" else PRODUCERS.get(item.name, Producer).origin
            return f"the {kind} name '{item.name}' is taken ({taken_by})"
        seen.add(item.name)
    return None


def contract_problem(backend) -> str | None:
    """What breaks the backend contract, or None: what every plugin item needs (`_item_problem`), and class
    attributes of the types the session reads."""
    if problem := _item_problem(backend, Backend, "gemmbench.backends.Backend", "prepare(case, inputs)"):
        return problem
    for flag in ("in_default_set", "launches_with_pdl", "needs_extension"):
        if not isinstance(getattr(backend, flag), bool):
            return f"backend '{backend.name}': {flag} is {getattr(backend, flag)!r}, not True or False"
    max_m = backend.max_m
    if max_m is not None and (isinstance(max_m, bool) or not isinstance(max_m, int) or max_m < 1):
        return f"backend '{backend.name}': max_m is {max_m!r}, not a positive int or None"
    return None


def _producer_problem(producer) -> str | None:
    """What breaks the producer contract, or None."""
    public_name = "gemmbench.backends.producers.Producer"
    return _item_problem(producer, Producer, public_name, "prepare(case, hidden, weight, x)")


def _item_problem(item, base: type, public_name: str, prepare: str) -> str | None:
    """What a plugin's backend or producer lacks, or None: an instance of `base` (imported as `public_name`)
    with a usable name, a description of its code, and its own `prepare`."""
    kind = base.__name__.lower()
    if not isinstance(item, base):
        return f"{item!r} is not a {public_name} instance"
    if not isinstance(item.name, str) or not _NAME.match(item.name):
        return f"{kind} name {item.name!r} is not letters, digits, '_', '.' or '-'"
    if not isinstance(item.code, str) or not item.code:
        return f"{kind} '{item.name}' does not say what it runs (its `code` is empty)"
    if type(item).prepare is base.prepare:
        return f"{kind} '{item.name}' does not implement {prepare}"
    return None
