"""Sender worker processes: the HTTP work of deliveries spread over more than one core.

One Python process is CPU-bound on the HTTP client (architecture.md §6). ``WorkerPoolSender``
has the Sender's ``send`` interface, so the engine does not know the difference: requests go to
child processes that each run the real ``Sender`` and the reports come back. Everything that decides
(schedule, breakers, limits, states, the store) stays in the daemon's own process, so the
delivery promise is unchanged; a worker that dies fails its in-flight attempts as network
errors (they are retried like any other) and is started again.

Requests and reports cross a socketpair as length-prefixed pickles, batched: everything sent
in one event-loop iteration travels in one frame. The children are started with subprocess
and an inherited socket, not fork (forking a process that runs gRPC threads is unsafe).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from convoyd.core.outcome import ErrorKind
from convoyd.delivery.sender import (
    DEFAULT_BODY_LIMIT,
    AttemptReport,
    OutboundRequest,
    Sender,
    unsent,
)

log = logging.getLogger(__name__)
_LENGTH = struct.Struct("!I")
# Frame kinds.
_SEND = 0  # parent -> child: [(id, url, headers, body, timeout), ...]
_REPORTS = 1  # child -> parent: [(id, report fields...), ...]
_ALLOW = 2  # parent -> child: new allow-list
_READY = 3  # child -> parent: the sender is started; requests can come
READY_TIMEOUT = 30.0
# A reply later than the request's own timeout plus this is given up, and its worker replaced.
REPLY_MARGIN = 10.0
RESTART_DELAY = 0.1
MAX_RESTART_DELAY = 5.0


def _frame(kind: int, payload: Any) -> bytes:
    data = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _frames(kind: int, items: list[Any], spoiled: Callable[[Any], None]) -> bytes:
    """``items`` as one frame; when that fails (an item that cannot be pickled, a frame too large
    for its length prefix), one frame per item, and each item that still fails goes to
    ``spoiled`` instead of taking the whole batch down with it."""
    with contextlib.suppress(Exception):
        return _frame(kind, items)
    out = []
    for item in items:
        try:
            out.append(_frame(kind, [item]))
        except Exception:
            spoiled(item)
    return b"".join(out)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, Any]:
    size = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))[0]
    # The peer is our own child or parent, started by us over a private socketpair.
    kind, payload = pickle.loads(await reader.readexactly(size))  # noqa: S301
    return kind, payload


def _report_fields(r: AttemptReport) -> tuple[Any, ...]:
    return (
        r.status,
        r.headers,
        r.body,
        r.truncated,
        r.error_kind.value,
        r.error,
        r.remote_address,
        r.duration,
        r.retry_after,
        r.internal,
    )


def _report(fields: Sequence[Any]) -> AttemptReport:
    status, headers, body, truncated, kind, error, remote, duration, retry_after, internal = fields
    return AttemptReport(
        status=status,
        headers=headers,
        body=body,
        truncated=truncated,
        error_kind=ErrorKind(kind),
        error=error,
        remote_address=remote,
        duration=duration,
        retry_after=retry_after,
        internal=internal,
    )


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
                "convoyd.delivery.workers",
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
            kind, _ = await asyncio.wait_for(_read_frame(reader), READY_TIMEOUT)
            if kind != _READY:
                raise ValueError(f"unexpected first frame {kind}")
            worker.ready.set()
            while True:
                kind, payload = await _read_frame(reader)
                if kind == _REPORTS:
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
            report = _report(fields)
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
                worker.writer.write(_frame(_ALLOW, self._allow))

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
        worker.outbox.append(
            (request_id, request.url, tuple(request.headers), request.body, request.timeout)
        )
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
                    _frames(_SEND, batch, functools.partial(self._unsendable, worker))
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


# -- the child process ------------------------------------------------------------------------


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
            self._writer.write(_frames(_REPORTS, self._done[:], self._spoiled))
            self._done.clear()

    def _spoiled(self, item: tuple[Any, ...]) -> None:
        # A report that cannot be pickled (a bug): its attempt still gets an answer.
        failed = unsent("the sender worker could not return the report")
        self._writer.write(_frame(_REPORTS, [(item[0], *_report_fields(failed))]))

    def _reply(self, request_id: Any, report: AttemptReport) -> None:
        self._done.append((request_id, *_report_fields(report)))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    async def _one(
        self, request_id: Any, url: str, headers: Any, body: bytes, limit: float
    ) -> None:
        try:
            report = await self._sender.send(
                OutboundRequest(url=url, headers=headers, body=body, timeout=limit)
            )
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
    writer.write(_frame(_READY, None))
    child = _Child(sender, writer)
    try:
        while True:
            kind, payload = await _read_frame(reader)
            if kind == _SEND:
                for item in payload:
                    child.take(item)
            elif kind == _ALLOW:
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
