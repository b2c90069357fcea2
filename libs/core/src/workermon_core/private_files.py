"""Owner-only files: the data directory (0700) and what the suite keeps in it (0600).

The data directory holds the JWT secret, the users file, the SQLite history and the embedded Redis's
data; another account on the host must read none of them, whatever the umask the suite started with.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import structlog

log = structlog.get_logger("workermon.files")

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """Create `path` (mode 0700) when missing; with `tighten`, remove group and other access from an
    existing one too. Returns the path."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if tighten:
        _restrict(path, DIR_MODE)
    return path


def private_file(path: Path) -> None:
    """Remove group and other access from `path` when it exists (a file the suite keeps)."""
    with contextlib.suppress(FileNotFoundError):
        _restrict(path, FILE_MODE)


def create_private_file(path: Path) -> None:
    """Make sure `path` exists with mode 0600, without touching its content (so a program that opens
    it next, SQLite for one, keeps that mode and gives it to the files it creates beside it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    private_file(path)


def write_private_file(path: Path, text: str) -> bool:
    """Create `path` with mode 0600 holding `text`; False (and nothing written) when it exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return True


def _restrict(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if not current & 0o077:
        return
    try:
        os.chmod(path, current & mode)
    except OSError as exc:
        # Not ours to change: a volume mounted by someone else (a Kubernetes emptyDir belongs to root
        # with the pod's fsGroup), a read-only file system. Starting matters more; say so once here.
        log.warning("not_made_private", path=str(path), mode=oct(current), error=exc.strerror or str(exc))


def secure_data_dir(path: Path) -> None:
    """Tighten an existing data directory (0700) and every file and directory directly in it (files
    0600, directories 0700): a directory left by an older version, or made under a loose umask, is
    the owner's alone from this start on. A missing directory is left to be created when first needed."""
    if not path.is_dir():
        return
    private_dir(path)
    for entry in path.iterdir():
        if entry.is_symlink():
            continue
        if entry.is_dir():
            _restrict(entry, DIR_MODE)
        elif entry.is_file():
            private_file(entry)
