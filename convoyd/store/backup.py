"""`convoyd backup`: a consistent copy of the SQLite database, safe while the daemon runs.

SQLite's online backup API copies every page in one step under one read transaction, so the
copy is a snapshot of one commit; in WAL mode that read blocks no writer (the daemon keeps
accepting and delivering). The copy is written beside the target, checked, synced and then
renamed into place: a target that exists is always a complete backup.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from convoyd.errors import BackupError


def backup(database: Path, target: Path, *, force: bool = False) -> int:
    """Copies ``database`` to ``target``; returns the size of the copy in bytes."""
    if not database.exists():
        raise BackupError(f"no database at {database}")
    if target.is_dir():
        raise BackupError(f"{target} is a directory; give a file name")
    if target.exists() and not force:
        raise BackupError(f"{target} exists; use --force to overwrite it")
    if not target.parent.is_dir():
        raise BackupError(f"directory {target.parent} does not exist")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        _copy(database, tmp)
        _fsync(tmp)
        tmp.replace(target)
        _fsync(target.parent)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {database} failed: {exc}") from None
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return target.stat().st_size


def _copy(database: Path, tmp: Path) -> None:
    # Read-only: the backup never writes to the live database.
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as copy:
            source.backup(copy)  # all pages in one step: one consistent snapshot
            # The copy inherits WAL mode; a backup is one self-contained file.
            copy.execute("PRAGMA journal_mode = DELETE")
            result = copy.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise BackupError(f"the copy of {database} fails its check: {result}")
    finally:
        source.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
