"""The daemon's side of the sender workers: a pool spreading the HTTP work over child processes.

One Python process is CPU-bound on the HTTP client (architecture.md §6). ``WorkerPoolSender``
has the Sender's ``send`` interface, so the engine does not know the difference: requests go to
child processes that each run the real ``Sender`` and the reports come back. Everything that decides
(schedule, breakers, limits, states, the store) stays in the daemon's own process, so the
delivery promise is unchanged; a worker that dies fails its in-flight attempts as network
errors (they are retried like any other) and is started again.

Requests and reports cross a socketpair as length-prefixed pickles, batched: everything sent
in one event-loop iteration travels in one frame. The children are started with subprocess
and an inherited socket, not fork (forking a process that runs gRPC threads is unsafe); the
child is ``convoyd.delivery.worker_child``, the framing ``convoyd.delivery.frames``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from convoyd.delivery import frames
from convoyd.delivery.sender import (
    DEFAULT_BODY_LIMIT,
    AttemptReport,
    OutboundRequest,
    unsent,
)

log = logging.getLogger(__name__)
# Kept here under its old name: tests write raw frames to a worker with it.
_LENGTH = frames.LENGTH
READY_TIMEOUT = 30.0
# A reply later than the request's own timeout plus this is given up, and its worker replaced.
REPLY_MARGIN = 10.0
RESTART_DELAY = 0.1
MAX_RESTART_DELAY = 5.0


class _Worker:
    """One child process and the attempts it has in flight."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        # Request id -> (its reply, the loop time after which the reply is given up).
        self.pending: dict[int, tuple[asyncio.Future[AttemptReport], float]] = {}
        # Set while the child runs and has said it is ready; only ready workers take requests.
        self.ready = asyncio.Event()
        self.outbox: list[tuple[Any, ...]] = []
        self.supervisor: asyncio.Task[None] | None = None


class WorkerPoolSender:
    """The Sender's ``send`` over child processes; see the module docstring.

    No attempt waits forever: a worker that dies fails its attempts at once; a reply that does
    not come within the request's timeout plus ``reply_margin`` fails its attempt, and the
    worker, hung or broken, is killed and started again (its other attempts fail with it).
    """

    def __init__(
        self,
        *,
        workers: int,
        allow_cidrs: Sequence[str] = (),
        body_limit: int = DEFAULT_BODY_LIMIT,
        user_agent: str,
        reply_margin: float = REPLY_MARGIN,
    ) -> None:
        self._count = workers
        self._allow = list(allow_cidrs)
        self._config = {"body_limit": body_limit, "user_agent": user_agent}
        self._workers = [_Worker(i) for i in range(workers)]
        self._ids = itertools.count()
        self._flush_scheduled = False
        self._closing = False
        self._reply_margin = reply_margin
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for worker in self._workers:
            worker.supervisor = asyncio.create_task(
                self._supervise(worker), name=f"convoyd-sender-{worker.index}"
            )
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.ready.wait(), READY_TIMEOUT)
            except TimeoutError:
                await self.close()
                raise RuntimeError(f"sender worker {worker.index} did not start") from None
        self._watch = asyncio.create_task(self._watch_replies(), name="convoyd-sender-watch")

    async def _supervise(self, worker: _Worker) -> None:
        """Runs the worker's child as long as the pool is open; starts it again when it ends."""
        delay = RESTART_DELAY
        while not self._closing:
            try:
                reader = await self._launch(worker)
            except Exception as exc:  # cannot even start a process (EMFILE, ENOMEM...)
                log.error("could not start sender worker %d: %s", worker.index, exc)
            else:
                worked = False
                try:
                    worked = await self._read(worker, reader)
                finally:
                    self._gone(worker)
                if worker.proc is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(worker.proc.wait(), 5)
                if self._closing:
                    return
                if worked:  # it had been working: start it again after the shortest pause
                    delay = RESTART_DELAY
                log.error("sender worker %d exited; starting it again", worker.index)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)  # one that keeps failing to start

    async def _launch(self, worker: _Worker) -> asyncio.StreamReader:
        parent, child = socket.socketpair()
        config = {**self._config, "allow_cidrs": self._allow}
        try:
            worker.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "convoyd.delivery.worker_child",
                str(child.fileno()),
                repr(config),
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        reader, worker.writer = await asyncio.open_connection(sock=parent)
        return reader

    async def _read(self, worker: _Worker, reader: asyncio.StreamReader) -> bool:
        """Reads the child's frames until it is gone or sends what cannot be read; returns
        whether it got as far as being ready."""
        try:
            kind, _ = await asyncio.wait_for(frames.read(reader), READY_TIMEOUT)
            if kind != frames.READY:
                raise ValueError(f"unexpected first frame {kind}")
            worker.ready.set()
            while True:
                kind, payload = await frames.read(reader)
                if kind == frames.REPORTS:
                    for item in payload:
                        self._deliver(worker, item)
        except (asyncio.IncompleteReadError, ConnectionError):
            return worker.ready.is_set()  # the child exited, or was killed
        except Exception as exc:  # a frame that does not unpickle, a child that never got ready
            log.error(
                "sender worker %d is broken (%s); starting it again",
                worker.index,
                type(exc).__name__,
            )
        return worker.ready.is_set()

    @staticmethod
    def _deliver(worker: _Worker, item: Any) -> None:
        try:
            request_id, *fields = item
            report = frames.report(fields)
        except Exception:  # one malformed report; its attempt is given up by the watch
            log.error("sender worker %d sent a malformed report", worker.index)
            return
        entry = worker.pending.pop(request_id, None)
        if entry is not None and not entry[0].done():
            entry[0].set_result(report)

    def _gone(self, worker: _Worker) -> None:
        """The child is gone or broken: nothing more goes to it, its attempts fail."""
        worker.ready.clear()
        if worker.writer is not None:
            worker.writer.close()
            worker.writer = None
        if not self._closing:
            self._kill(worker)  # broken, not exited: make sure it is gone
        self._fail(
            worker,
            "convoyd is shutting down"
            if self._closing
            else "the sender worker exited during the attempt",
        )

    @staticmethod
    def _kill(worker: _Worker) -> None:
        proc = worker.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    @staticmethod
    def _fail(worker: _Worker, reason: str) -> None:
        report = unsent(reason)
        for future, _ in worker.pending.values():
            if not future.done():
                future.set_result(report)
        worker.pending.clear()
        worker.outbox.clear()

    async def _watch_replies(self) -> None:
        """Gives up replies overdue past their request's timeout plus the margin; the worker
        that owes them is hung or broken (its own Sender ends every attempt within the
        timeout), so it is killed, which fails its other attempts, and started again."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self._reply_margin / 2))
            now = loop.time()
            for worker in self._workers:
                overdue = [i for i, (_, due) in worker.pending.items() if due <= now]
                if not overdue:
                    continue
                log.error(
                    "sender worker %d did not answer %d attempt(s) in time; replacing it",
                    worker.index,
                    len(overdue),
                )
                for request_id in overdue:
                    future, _ = worker.pending.pop(request_id)
                    if not future.done():
                        future.set_result(unsent("the sender worker did not answer in time"))
                worker.ready.clear()
                self._kill(worker)

    def set_allow_cidrs(self, cidrs: Sequence[str]) -> None:
        self._allow = list(cidrs)
        for worker in self._workers:
            if worker.writer is not None:
                worker.writer.write(frames.frame(frames.ALLOW, self._allow))

    async def _ready_worker(self) -> _Worker | None:
        ready = [w for w in self._workers if w.ready.is_set()]
        if not ready:  # every worker is restarting: wait a little for one
            waits = [asyncio.create_task(w.ready.wait()) for w in self._workers]
            _, pending = await asyncio.wait(
                waits, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            ready = [w for w in self._workers if w.ready.is_set()]
        # The least busy worker takes it: a slow endpoint's attempts do not pile onto one.
        return min(ready, key=lambda w: len(w.pending)) if ready else None

    async def send(self, request: OutboundRequest) -> AttemptReport:
        worker = await self._ready_worker()
        if worker is None:
            return unsent("no sender worker is running")
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AttemptReport] = loop.create_future()
        worker.pending[request_id] = (future, loop.time() + request.timeout + self._reply_margin)
        worker.outbox.append(frames.request_fields(request_id, request))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        try:
            return await future
        finally:
            worker.pending.pop(request_id, None)

    def _flush(self) -> None:
        self._flush_scheduled = False
        for worker in self._workers:
            if worker.outbox and worker.writer is not None:
                batch, worker.outbox = worker.outbox, []
                worker.writer.write(
                    frames.batch(frames.SEND, batch, functools.partial(self._unsendable, worker))
                )

    @staticmethod
    def _unsendable(worker: _Worker, item: tuple[Any, ...]) -> None:
        entry = worker.pending.pop(item[0], None)
        if entry is not None and not entry[0].done():
            entry[0].set_result(unsent("could not pass the request to a sender worker"))

    async def close(self) -> None:
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        for worker in self._workers:
            if worker.writer is not None:
                worker.writer.close()
        for worker in self._workers:
            if worker.supervisor is not None:
                worker.supervisor.cancel()
                await asyncio.gather(worker.supervisor, return_exceptions=True)
            if worker.proc is not None:
                try:
                    await asyncio.wait_for(worker.proc.wait(), 10)
                except TimeoutError:
                    worker.proc.kill()
                    await worker.proc.wait()
            self._fail(worker, "convoyd is shutting down")
