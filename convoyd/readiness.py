"""Whether the store answers: /healthz and gRPC health say NOT_SERVING while it does not.

A server store (PostgreSQL) can go away while convoyd runs. Meanwhile ingest answers
UNAVAILABLE (nothing is accepted that could not be stored), outcomes wait in the recorder,
and the pool reconnects by itself; this watch only tells load balancers and orchestrators
to send traffic elsewhere until the store is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("convoyd")

PING_INTERVAL = 1.0


class StoreReadiness:
    """Pings the store every ``interval`` seconds and calls ``on_change(ok)`` on each change."""

    def __init__(
        self,
        ping: Callable[[], Awaitable[bool]],
        on_change: Callable[[bool], Awaitable[None]],
        *,
        interval: float = PING_INTERVAL,
        where: str = "the store",
    ) -> None:
        self._ping = ping
        self._on_change = on_change
        self._interval = interval
        self._where = where
        self._task: asyncio.Task[None] | None = None
        self.ok = True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="convoyd-store-readiness")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> bool:
        """Pings once; reports a change. True when the store answered."""
        try:
            ok = await self._ping()
        except Exception:
            log.exception("store ping failed")
            ok = False
        if ok != self.ok:
            self.ok = ok
            if ok:
                log.info("%s answers again: serving", self._where)
            else:
                log.error("%s does not answer: not serving until it does", self._where)
            await self._on_change(ok)
        return ok

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()
