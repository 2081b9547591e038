"""The per-user cache folder (extension builds, roofline measurements, kernel tunings), and its JSON files:
read with what was wrong with them said (a torn or foreign file is reported and rebuilt, never silently
emptied), written atomically (concurrent fleet ranks never tear them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gemmbench.files import write_atomically

CACHE_ENV = "GEMMBENCH_CACHE_DIR"


def cache_root() -> Path:
    """$GEMMBENCH_CACHE_DIR, else $XDG_CACHE_HOME/gemmbench, else ~/.cache/gemmbench."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gemmbench"


def read_json_cache(name: str) -> tuple[dict, str | None]:
    """The JSON object cached in `name` (empty where there is no such file), and, where the file exists but
    holds no JSON object (torn by a crash, or not gemmbench's), what is wrong with it: its entries are lost
    and the next write rebuilds it."""
    cached, problem = read_json_object(cache_root() / name)
    return cached, f"{problem}: it is rebuilt" if problem else None


def read_json_object(path: Path) -> tuple[dict, str | None]:
    """The JSON object in `path` (empty where there is no such file), and what is wrong with the file where
    it exists but holds none."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"the file {path} cannot be read ({type(exc).__name__})"
    try:
        cached = json.loads(text)
    except ValueError:
        cached = None
    if not isinstance(cached, dict):
        return {}, f"the file {path} is not a JSON object (torn or not gemmbench's)"
    return cached, None


def write_json_cache(name: str, cached: dict) -> None:
    """Write `cached` to the cache file `name`; an unwritable cache costs a rebuild next time."""
    try:
        write_json(cache_root() / name, cached)
    except OSError:
        pass


def read_cache_entry(name: str, key: str) -> dict | None:
    """The entry cached under `key` in the cache file `name`, or None (no file, no such key, or not an entry)."""
    entry = read_json_cache(name)[0].get(key)
    return entry if isinstance(entry, dict) else None


def write_cache_entry(name: str, key: str, entry: dict) -> None:
    """Cache `entry` under `key` in the cache file `name`, beside the file's other entries."""
    cached = read_json_cache(name)[0]
    cached[key] = entry
    write_json_cache(name, cached)


def write_json(path: Path, content: dict) -> None:
    """Write `content` as JSON to `path` atomically, creating its folder. Raises OSError."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(Path(path), json.dumps(content, indent=1) + "\n")
