"""Sender worker processes: the HTTP work of deliveries spread over more than one core.

One Python process is CPU-bound on the HTTP client (DESIGN §7). ``WorkerPoolSender`` has the
Sender's ``send`` interface, so the engine does not know the difference: requests go to child
processes that each run the real ``Sender`` and the reports come back. Everything that decides
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
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from convoyd.core.outcome import ErrorKind
from convoyd.delivery.sender import AttemptReport, OutboundRequest, Sender

log = logging.getLogger(__name__)
_LENGTH = struct.Struct("!I")
# Frame kinds.
_SEND = 0  # parent -> child: [(id, url, headers, body, timeout), ...]
_REPORTS = 1  # child -> parent: [(id, report fields...), ...]
_ALLOW = 2  # parent -> child: new allow-list
_READY = 3  # child -> parent: the sender is started; requests can come
READY_TIMEOUT = 30.0


def _frame(kind: int, payload: Any) -> bytes:
    data = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, Any]:
    size = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))[0]
    # The peer is our own child or parent, started by us over a private socketpair.
    return pickle.loads(await reader.readexactly(size))  # type: ignore[no-any-return]  # noqa: S301


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
    )


def _report(fields: Sequence[Any]) -> AttemptReport:
    status, headers, body, truncated, kind, error, remote, duration, retry_after = fields
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
    )


def _failure(reason: str) -> AttemptReport:
    """The report of an attempt that never reached the network (it is retried as usual)."""
    return AttemptReport(
        status=None,
        headers=(),
        body=b"",
        truncated=False,
        error_kind=ErrorKind.NETWORK,
        error=reason,
        remote_address="",
        duration=0.0,
        retry_after=None,
    )


class _Worker:
    """One child process and the attempts it has in flight."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.pending: dict[int, asyncio.Future[AttemptReport]] = {}
        # Set while the child runs and has said it is ready; only ready workers take requests.
        self.ready = asyncio.Event()
        self.outbox: list[tuple[Any, ...]] = []
        self.reading: asyncio.Task[None] | None = None


class WorkerPoolSender:
    def __init__(
        self,
        *,
        workers: int,
        allow_cidrs: Sequence[str] = (),
        body_limit: int = 16384,
        user_agent: str,
    ) -> None:
        self._count = workers
        self._allow = list(allow_cidrs)
        self._config = {"body_limit": body_limit, "user_agent": user_agent}
        self._workers = [_Worker(i) for i in range(workers)]
        self._ids = itertools.count()
        self._flush_scheduled = False
        self._closing = False

    async def start(self) -> None:
        for worker in self._workers:
            await self._spawn(worker)

    async def _spawn(self, worker: _Worker) -> None:
        parent, child = socket.socketpair()
        config = {**self._config, "allow_cidrs": self._allow}
        worker.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "convoyd.delivery.workers",
            str(child.fileno()),
            repr(config),
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
        )
        child.close()
        worker.reader, worker.writer = await asyncio.open_connection(sock=parent)
        worker.reading = asyncio.create_task(
            self._read(worker), name=f"convoyd-sender-{worker.index}"
        )
        try:
            await asyncio.wait_for(worker.ready.wait(), READY_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(f"sender worker {worker.index} did not start") from None

    async def _read(self, worker: _Worker) -> None:
        assert worker.reader is not None
        try:
            while True:
                kind, payload = await _read_frame(worker.reader)
                if kind == _READY:
                    worker.ready.set()
                elif kind == _REPORTS:
                    for request_id, *fields in payload:
                        future = worker.pending.pop(request_id, None)
                        if future is not None and not future.done():
                            future.set_result(_report(fields))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        worker.ready.clear()
        if worker.writer is not None:
            worker.writer.close()
        worker.writer = None
        self._fail(worker, "the sender worker exited during the attempt")
        if self._closing:
            return
        log.error("sender worker %d exited; starting it again", worker.index)
        if worker.proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.proc.wait(), 5)
        await self._spawn(worker)

    @staticmethod
    def _fail(worker: _Worker, reason: str) -> None:
        report = _failure(reason)
        for future in worker.pending.values():
            if not future.done():
                future.set_result(report)
        worker.pending.clear()
        worker.outbox.clear()

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
            return _failure("no sender worker is running")
        request_id = next(self._ids)
        future: asyncio.Future[AttemptReport] = asyncio.get_running_loop().create_future()
        worker.pending[request_id] = future
        worker.outbox.append(
            (request_id, request.url, tuple(request.headers), request.body, request.timeout)
        )
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        try:
            return await future
        finally:
            worker.pending.pop(request_id, None)

    def _flush(self) -> None:
        self._flush_scheduled = False
        for worker in self._workers:
            if worker.outbox and worker.writer is not None:
                batch, worker.outbox = worker.outbox, []
                worker.writer.write(_frame(_SEND, batch))

    async def close(self) -> None:
        self._closing = True
        for worker in self._workers:
            if worker.writer is not None:
                worker.writer.close()
        for worker in self._workers:
            if worker.reading is not None:
                worker.reading.cancel()
                await asyncio.gather(worker.reading, return_exceptions=True)
            if worker.proc is not None:
                try:
                    await asyncio.wait_for(worker.proc.wait(), 10)
                except TimeoutError:
                    worker.proc.kill()
            self._fail(worker, "convoyd is shutting down")


# -- the child process ------------------------------------------------------------------------


async def _serve(fd: int, config: dict[str, Any]) -> None:
    sender = Sender(
        allow_cidrs=config["allow_cidrs"],
        body_limit=config["body_limit"],
        user_agent=config["user_agent"],
    )
    await sender.start()
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
    writer.write(_frame(_READY, None))
    loop = asyncio.get_running_loop()
    done: list[tuple[Any, ...]] = []
    flush_scheduled = False
    tasks: set[asyncio.Task[None]] = set()

    def flush() -> None:
        nonlocal flush_scheduled
        flush_scheduled = False
        if done:
            writer.write(_frame(_REPORTS, done[:]))
            done.clear()

    async def one(request_id: int, url: str, headers: Any, body: bytes, limit: float) -> None:
        nonlocal flush_scheduled
        report = await sender.send(
            OutboundRequest(url=url, headers=headers, body=body, timeout=limit)
        )
        done.append((request_id, *_report_fields(report)))
        if not flush_scheduled:
            flush_scheduled = True
            loop.call_soon(flush)

    try:
        while True:
            kind, payload = await _read_frame(reader)
            if kind == _SEND:
                for item in payload:
                    task = asyncio.create_task(one(*item))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            elif kind == _ALLOW:
                sender.set_allow_cidrs(payload)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the daemon closed the pipe (shutdown) or died: stop
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
    try:
        import uvloop

        uvloop.run(_serve(fd, config))
    except ImportError:  # pragma: no cover
        asyncio.run(_serve(fd, config))
    os._exit(0)


if __name__ == "__main__":
    main()
