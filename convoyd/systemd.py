"""Talking to systemd: sd_notify(3) over $NOTIFY_SOCKET, without libsystemd.

The protocol is one AF_UNIX datagram of newline-separated ``KEY=value`` lines to the socket
named in $NOTIFY_SOCKET (a path, or ``@name`` for the abstract namespace). Outside systemd the
variable is unset and every call is a no-op, so the daemon needs no mode switch.

systemd 252 has no ``Type=notify-reload`` (architecture.md §9): a reload is announced with
``RELOADING=1`` plus ``MONOTONIC_USEC`` and finished with ``READY=1``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as systemd reads MONOTONIC_USEC."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]  # abstract namespace
    if value.startswith("/"):
        return value
    return None  # vsock and other forms: not supported


class Notifier:
    """Sends state changes to the service manager; every method is a no-op without one."""

    def __init__(self, address: str | None = None, *, watchdog_usec: int = 0) -> None:
        self._address = _address(address) if address else None
        self._socket: socket.socket | None = None
        self._failed = False
        self.watchdog_usec = watchdog_usec

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        watchdog = 0
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process expected to ping; a child that inherited it is not.
        if not pid or pid == str(os.getpid()):
            try:
                watchdog = max(0, int(env.get("WATCHDOG_USEC", "0") or 0))
            except ValueError:
                watchdog = 0
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_usec=watchdog)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half the timeout), or None without a watchdog."""
        if not self.enabled or self.watchdog_usec <= 0:
            return None
        return self.watchdog_usec / 2 / 1_000_000

    def notify(self, *fields: str) -> bool:
        """Sends ``fields`` (``KEY=value`` each) as one message; False when it did not go out."""
        if self._address is None:
            return False
        data = "\n".join(fields).encode()
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)  # never stall the event loop on a full socket buffer
                self._socket = sock
            self._socket.sendto(data, self._address)
        except OSError as exc:
            if not self._failed:  # say it once, not at every watchdog ping
                log.warning("cannot notify systemd: %s", exc.strerror or exc)
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *((f"STATUS={status}",) if status else ()))

    def reloading(self) -> bool:
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", "STATUS=reloading")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


async def watchdog(notifier: Notifier, interval: float, *, alive: Callable[[], bool]) -> None:
    """Pings the watchdog every ``interval`` seconds while ``alive()`` holds.

    The pings come from a task on the event loop, so a blocked loop sends none, and a dead
    delivery engine (``alive`` false) withholds them: either way systemd restarts convoyd.
    """
    withheld = False
    while True:
        await asyncio.sleep(interval)
        if alive():
            notifier.watchdog()
            withheld = False
        elif not withheld:
            log.error("delivery engine is not running: withholding watchdog pings")
            withheld = True
