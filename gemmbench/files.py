"""Writing files so that a crash or a concurrent writer never leaves a torn one (run files and caches), and
so that nothing measured is lost where the path asked for cannot be written."""

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


def write_fallback(name: str, text: str) -> Path:
    """Write `text` to a new file in the system's temporary folder whose name starts as `name`'s stem and ends
    with its suffix, for what could not be written where asked; returns its path. The file is created
    exclusively, so it never replaces one that is there (a user's, or another run's fallback). Raises OSError,
    leaving nothing behind."""
    stem, suffix = Path(name).stem, Path(name).suffix
    fd, path = tempfile.mkstemp(prefix=f"{stem}.", suffix=suffix)
    os.close(fd)
    try:
        write_atomically(Path(path), text)
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return Path(path)


def can_create_in(folder: Path) -> OSError | None:
    """Whether a file can be created in `folder`, tried for real (a file created and removed): permission
    bits say nothing where the process runs as root on a read-only or virtual file system. None if it can,
    else the error."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".gemmbench-probe.")
    except OSError as exc:
        return exc
    os.close(fd)
    os.unlink(probe)
    return None
