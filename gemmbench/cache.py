"""The per-user cache folder (extension builds, roofline measurements)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "GEMMBENCH_CACHE_DIR"


def cache_root() -> Path:
    """$GEMMBENCH_CACHE_DIR, else $XDG_CACHE_HOME/gemmbench, else ~/.cache/gemmbench."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gemmbench"
