"""A sender worker process: runs the real ``Sender`` for the daemon's ``WorkerPoolSender``.

Started by the daemon as ``python -m convoyd.delivery.worker_child FD CONFIG`` with one end of a
socketpair inherited as FD (see ``convoyd.delivery.workers``): it reads batches of requests, sends
each in its own task and writes the reports back in batches. It decides nothing; the daemon
keeps the schedule, breakers, limits, states and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from convoyd.delivery import frames
from convoyd.delivery.sender import AttemptReport, Sender, unsent


class _Child:
    """The child's side of the socketpair: requests in, one task each, reports out in batches."""

    def __init__(self, sender: Sender, writer: asyncio.StreamWriter) -> None:
        self._sender = sender
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._done: list[tuple[Any, ...]] = []
        self._flush_scheduled = False
        self.tasks: set[asyncio.Task[None]] = set()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._done:
            self._writer.write(frames.batch(frames.REPORTS, self._done[:], self._spoiled))
            self._done.clear()

    def _spoiled(self, item: tuple[Any, ...]) -> None:
        # A report that cannot be pickled (a bug): its attempt still gets an answer.
        failed = unsent("the sender worker could not return the report")
        self._writer.write(frames.frame(frames.REPORTS, [(item[0], *frames.report_fields(failed))]))

    def _reply(self, request_id: Any, report: AttemptReport) -> None:
        self._done.append((request_id, *frames.report_fields(report)))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    async def _one(
        self,
        request_id: Any,
        url: str,
        headers: Any,
        body: bytes,
        limit: float,
        body_limit: int | None = None,
        tls: Any = None,
    ) -> None:
        """One SEND item (see convoyd.delivery.frames): sent, and its report queued."""
        try:
            request = frames.request(url, headers, body, limit, body_limit, tls)
            report = await self._sender.send(request)
        except Exception as exc:  # the Sender reports its failures; this is a bug: still answer
            report = unsent(f"the sender worker failed on the attempt ({type(exc).__name__})")
        self._reply(request_id, report)

    def take(self, item: Any) -> None:
        try:
            task = asyncio.create_task(self._one(*item))
        except Exception as exc:  # a malformed request: answer it if it has an id at all
            with contextlib.suppress(Exception):
                self._reply(
                    item[0],
                    unsent(f"malformed request to the sender worker ({type(exc).__name__})"),
                )
            return
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def _serve(fd: int, config: dict[str, Any]) -> None:
    sender = Sender(
        allow_cidrs=config["allow_cidrs"],
        body_limit=config["body_limit"],
        user_agent=config["user_agent"],
    )
    await sender.start()
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
    writer.write(frames.frame(frames.READY, None))
    child = _Child(sender, writer)
    try:
        while True:
            kind, payload = await frames.read(reader)
            if kind == frames.SEND:
                for item in payload:
                    child.take(item)
            elif kind == frames.ALLOW:
                sender.set_allow_cidrs(payload)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the daemon closed the pipe (shutdown) or died: stop
    # Anything else (a frame that does not unpickle) ends the process: the daemon sees it exit,
    # fails the attempts it had here at once and starts another worker.
    finally:
        for task in child.tasks:
            task.cancel()
        await asyncio.gather(*child.tasks, return_exceptions=True)
        await sender.close()


def main() -> None:
    import ast

    # The daemon decides when its workers stop (it closes the socket, or dies and the socket
    # closes): a Ctrl-C or a SIGTERM sent to the whole process group is meant for the daemon,
    # which drains its attempts through these workers before it lets them go.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, config = int(sys.argv[1]), ast.literal_eval(sys.argv[2])
    from convoyd import gc_tuning

    gc_tuning.tune()
    run: Callable[[Coroutine[Any, Any, None]], None]
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    try:
        run(_serve(fd, config))
    except Exception as exc:
        # One line, no traceback (its frames may hold request headers, which carry secrets).
        sys.stderr.write(f"convoyd sender worker stopped: {type(exc).__name__}\n")
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
