"""Writing files so that a crash or a concurrent writer never leaves a torn one: run files and caches."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# What open() asks for before the umask is applied.
DEFAULT_FILE_MODE = 0o666


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: Path, text: str) -> None:
    """Write `text` beside `path` and rename it over `path`: readers see the old file or the new one, never
    part of one (concurrent fleet ranks rewriting a cache included). Raises OSError."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        # mkstemp creates the file readable by its owner only; give it the mode a plain open() would.
        os.chmod(tmp, DEFAULT_FILE_MODE & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
