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
from pathlib import Path

from gemmbench.backends.base import Backend
from gemmbench.backends.producers import PRODUCERS, Producer, context_names
from gemmbench.backends.registry import REGISTRY
from gemmbench.errors import BACKEND_FAILURES, GemmbenchError

ENTRY_POINT_GROUP = "gemmbench.backends"
# A backend name goes into tables, file names and --backend lists: letters, digits, _ . - only.
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_FIX_CONTRACT = "see docs/plugins.md for what a plugin provides"

_loaded: dict[str, list[Backend]] = {}  # origin -> its backends: each plugin is loaded once per process


def load_plugins(specs: list[str] = (), entry_points: bool = True) -> list[Backend]:
    """Load the plugins named in `specs` (module names or .py files) and, unless told not to, those of
    installed packages; register their backends. Returns the backends loaded. Raises GemmbenchError."""
    sources = [(f"plugin {spec}", lambda spec=spec: _import(spec)) for spec in specs]
    if entry_points:
        for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            sources.append((f"entry point {point.name} ({point.value})", point.load))
    backends: list[Backend] = []
    for origin, load in sources:
        if origin not in _loaded:
            module_backends, producers = _contents_of(origin, load)
            _register_producers(origin, producers)
            _loaded[origin] = _register(origin, module_backends)
        backends += _loaded[origin]
    return backends


def _import(spec: str):
    """A module by file path (`examples/my_plugin.py`) or by dotted name (`mypackage.gemm_backends`)."""
    path = Path(spec)
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"no file {path}")
        name = "gemmbench_plugin_" + re.sub(r"\W", "_", path.stem)
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None:  # Python knows no loader for the file: not a .py file
            raise ImportError(f"{path} is not a Python file (a plugin is a .py file or an importable module)")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        module_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def _contents_of(origin: str, load) -> tuple[list, list]:
    """The plugin's BACKENDS and PRODUCERS lists (either may be absent, not both)."""
    try:
        loaded = load()
    except BACKEND_FAILURES as exc:  # any failure to import a plugin (a sys.exit too) is that plugin's error
        message = (str(exc).strip().splitlines() or [""])[0]
        raise GemmbenchError(
            f"{origin} failed to import: {type(exc).__name__}: {message}", "fix the plugin, or leave it out"
        ) from None
    backends = loaded if isinstance(loaded, (list, tuple)) else getattr(loaded, "BACKENDS", None)
    producers = [] if isinstance(loaded, (list, tuple)) else getattr(loaded, "PRODUCERS", [])
    if not isinstance(producers, (list, tuple)):
        raise GemmbenchError(f"{origin}: PRODUCERS is not a list of producers", _FIX_CONTRACT)
    if backends is None and producers:
        return [], list(producers)
    if not isinstance(backends, (list, tuple)) or not backends:
        raise GemmbenchError(f"{origin} defines no BACKENDS list of backends", _FIX_CONTRACT)
    return list(backends), list(producers)


def _register_producers(origin: str, producers: list) -> None:
    """Check each producer's contract, then make its name a context."""
    for producer in producers:
        if not isinstance(producer, Producer):
            problem = f"{producer!r} is not a gemmbench.backends.producers.Producer instance"
        elif not isinstance(producer.name, str) or not _NAME.match(producer.name):
            problem = f"producer name {producer.name!r} is not letters, digits, '_', '.' or '-'"
        elif producer.name in context_names():
            problem = f"the context name '{producer.name}' is taken ({PRODUCERS.get(producer.name, Producer).origin})"
        elif type(producer).prepare is Producer.prepare:
            problem = f"producer '{producer.name}' does not implement prepare(case, hidden, weight, x)"
        else:
            problem = None
        if problem:
            raise GemmbenchError(f"{origin}: {problem}", _FIX_CONTRACT)
    for producer in producers:
        producer.origin = origin
        PRODUCERS[producer.name] = producer


def _register(origin: str, backends: list) -> list[Backend]:
    for backend in backends:
        problem = contract_problem(backend)
        if problem:
            raise GemmbenchError(f"{origin}: {problem}", _FIX_CONTRACT)
        if backend.name in REGISTRY:
            taken_by = REGISTRY[backend.name].origin
            raise GemmbenchError(
                f"{origin}: the backend name '{backend.name}' is taken ({taken_by})", "give the backend another name"
            )
    for backend in backends:
        backend.origin = origin
        REGISTRY.register(backend)
    return backends


def contract_problem(backend) -> str | None:
    """What breaks the backend contract, or None: a Backend instance with a usable name, a description of
    its code, and its own prepare()."""
    if not isinstance(backend, Backend):
        return f"{backend!r} is not a gemmbench.backends.Backend instance"
    if not isinstance(backend.name, str) or not _NAME.match(backend.name):
        return f"backend name {backend.name!r} is not letters, digits, '_', '.' or '-'"
    if not isinstance(backend.code, str) or not backend.code:
        return f"backend '{backend.name}' does not say what it runs (its `code` is empty)"
    if type(backend).prepare is Backend.prepare:
        return f"backend '{backend.name}' does not implement prepare(case, inputs)"
    return None
