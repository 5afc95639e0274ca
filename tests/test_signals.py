"""convoyd.signals: SIGTERM stops the daemon, SIGHUP reloads it, and the handlers go with it."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from convoyd import signals


class Daemon:
    """A daemon that records what signal handling asked of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._stopped = asyncio.Event()
        self.reloaded = asyncio.Event()
        self.started = asyncio.Event()

    @property
    def serving(self) -> bool:
        return "start" in self.calls and "stop" not in self.calls

    async def start(self) -> None:
        self.calls.append("start")
        self.started.set()

    async def stop(self) -> None:
        self.calls.append("stop")

    def request_stop(self) -> None:
        self.calls.append("request_stop")
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def reload(self) -> bool:
        self.calls.append("reload")
        self.reloaded.set()
        return True


async def test_sighup_reloads_sigterm_stops_and_the_handlers_are_removed() -> None:
    daemon = Daemon()
    serving = asyncio.create_task(signals.serve(daemon))
    await asyncio.wait_for(daemon.started.wait(), 10)
    os.kill(os.getpid(), signal.SIGHUP)
    await asyncio.wait_for(daemon.reloaded.wait(), 10)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 10)
    assert daemon.calls == ["start", "reload", "request_stop", "stop"]
    loop = asyncio.get_running_loop()
    # Nothing left installed: removing a handler that is not there answers False.
    assert [loop.remove_signal_handler(s) for s in signals.SIGNALS] == [False, False, False]


async def test_a_failed_start_removes_the_handlers_too() -> None:
    class Failing(Daemon):
        async def start(self) -> None:
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await signals.serve(Failing())
    loop = asyncio.get_running_loop()
    assert [loop.remove_signal_handler(s) for s in signals.SIGNALS] == [False, False, False]
