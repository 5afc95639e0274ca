"""Ports another process already listens on: found before binding, and who holds them.

grpc reports a port in use with a line of its own C-core log ("add_port.cc ... Address already
in use") before the error reaches Python, so the listeners ask here first and say in one line
which process holds the port: another convoyd (by its pid) or some other program. The holder is
read from Linux's /proc (the listening socket's inode, then the process with that open file);
elsewhere, or for another user's process, the message says only that the port is in use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"  # the TCP state column of /proc/net/tcp: LISTEN


def in_use(host: str, port: int) -> bool:
    """Whether some socket listens on ``host``:``port`` now, by a trial bind of each address
    ``host`` means (as the listeners bind: SO_REUSEADDR, so a port in TIME_WAIT is free).
    False for port 0 and for addresses that cannot be bound for another reason: the listener
    then says what is wrong with them."""
    if port == 0:
        return False
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError:
        return False
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def holder(port: int, proc: Path = PROC) -> str:
    """Who listens on TCP ``port``: "another convoyd (pid 123)", "another process (pid 123,
    nginx)" or, when /proc does not say, "another process"."""
    inodes = _listening_inodes(port, proc)
    pid = _owner_of(inodes, proc) if inodes else None
    if pid is None:
        return "another process"
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
        name = (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return f"another process (pid {pid})"
    # The console script (python .../bin/convoyd serve) or the module (python -m convoyd.cli).
    if {Path(a.decode(errors="replace")).name for a in argv[:3]} & {"convoyd", "convoyd.cli"}:
        return f"another convoyd (pid {pid})"
    return f"another process (pid {pid}, {name})"


def _listening_inodes(port: int, proc: Path) -> set[str]:
    """The inodes of the sockets listening on ``port`` (any address, IPv4 and IPv6)."""
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            local_port = fields[1].rsplit(":", 1)[-1]
            if int(local_port, 16) == port and fields[9] != "0":
                found.add(fields[9])
    return found


def _owner_of(inodes: set[str], proc: Path) -> int | None:
    """The pid of a process with one of the sockets ``inodes`` open; None when no process
    whose open files this user may read has."""
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit()):
        with contextlib.suppress(OSError):
            for fd in (proc / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        return pid
    return None
