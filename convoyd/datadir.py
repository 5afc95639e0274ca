"""The data directory: making it, and the lock that gives it to one convoyd process at a time.

Two daemons on one directory would deliver every webhook twice and overwrite each other's
records and run.json. ``convoyd serve`` and ``convoyd migrate`` therefore take an exclusive
``flock`` on ``<data_dir>/convoyd.lock`` before writing anything else there and hold it until
they exit (the kernel drops it when the process dies, however it dies, so a stale lock file
never blocks a restart). ``convoyd backup`` takes no lock: it only reads, under SQLite's own
locking, and is meant to run beside the daemon.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from convoyd.errors import StartupError

LOCK_FILE = "convoyd.lock"


def prepare(path: Path) -> None:
    """Creates ``path`` (mode 0700) if needed; StartupError when it is not a usable directory."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StartupError(f"data_dir {path}: {exc.strerror or exc}") from None


def check_writable(path: Path) -> None:
    try:
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"data_dir {path}: {exc.strerror or exc}") from None


class DataDirLock:
    """The exclusive lock on one data directory, held from ``acquire`` to ``release``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Takes the lock at once or raises StartupError naming the directory and the pid of
        the process that holds it; then records our pid in the lock file."""
        if self._fd is not None:
            return
        try:
            # Not inherited by the sender workers: they are started with exec (subprocess).
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StartupError(
                f"data_dir {self.path.parent}: cannot open {LOCK_FILE}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise StartupError(
                f"data_dir {self.path.parent} is in use by another convoyd ({holder});"
                " stop it or give this one another data_dir"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise StartupError(
                f"data_dir {self.path.parent}: cannot write {LOCK_FILE}: {exc.strerror or exc}"
            ) from None
        self._fd = fd

    def release(self) -> None:
        """Gives the directory up. The file stays: removing it would let a third process lock
        a new file while a second one still waits on the old one."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor drops the flock


def _holder(fd: int) -> str:
    """'pid 1234' as the lock file says, or why it says nothing useful."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid unknown"
