"""How the daemon process answers signals: SIGTERM and SIGINT stop it gracefully (a second one
exits at once), SIGHUP reloads the configuration.

The code knows the daemon only as ``Daemon``, the few calls it makes (grpclib's
``graceful_exit`` over ``IClosable`` is the model), and puts the default handlers back when the
daemon has stopped."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Protocol

log = logging.getLogger("convoyd.app")  # the daemon's lifecycle lines, as before
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Daemon(Protocol):
    """What signal handling needs of a daemon (convoyd.app.App is one)."""

    @property
    def serving(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def request_stop(self) -> None: ...

    async def wait_stopped(self) -> None: ...

    async def reload(self) -> bool: ...


async def serve(app: Daemon) -> None:
    """Starts ``app``, serves until SIGTERM or SIGINT, then stops it; SIGHUP reloads."""
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second signal: exiting without waiting")
            os._exit(1)
        log.info("received %s: shutting down", signal.Signals(signum).name)
        app.request_stop()

    reloads: set[asyncio.Task[bool]] = set()

    def on_hangup() -> None:
        if not app.serving:
            return  # starting or stopping: nothing to reload into
        log.info("received SIGHUP: reloading the configuration")
        task = loop.create_task(app.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        await app.start()
        try:
            await app.wait_stopped()
        finally:
            await app.stop()
            log.info("convoyd stopped")
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)
