"""A thread that owns one SQLite connection and runs the jobs queued for it in batches.

The writer and the reader are both this: jobs (plain functions of a connection) queue up,
the thread takes every job waiting (up to a batch), runs the batch in one transaction of its
kind, and wakes each waiting event loop once per batch, not once per job.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from convoyd.errors import UnavailableError

T = TypeVar("T")
# A queued job, and what became of it: (future, loop, ok, value or exception).
Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]
Result = tuple["asyncio.Future[Any]", asyncio.AbstractEventLoop, bool, Any]

_STOP = object()


class JobThread(abc.ABC):
    """Subclasses say how a batch runs (``_execute``); this class queues, batches and answers."""

    name = "convoyd-store"

    def __init__(self, *, max_batch: int) -> None:
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = False

    def _start(self, conn: sqlite3.Connection) -> None:
        self._closing = False
        self._thread = threading.Thread(
            target=self._loop, args=(conn,), name=self.name, daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Finishes the jobs queued so far, then closes the connection."""
        if self._thread is None:
            return
        self._closing = True  # a job put behind _STOP would never be run
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``job`` in the thread's next batch and returns what it returned."""
        if self._thread is None or self._closing:
            raise UnavailableError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((job, future, loop))
        return await future

    @abc.abstractmethod
    def _execute(self, conn: sqlite3.Connection, batch: list[Job]) -> list[Result]:
        """Runs ``batch`` in one transaction of this thread's kind; one result per job."""

    def _loop(self, conn: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [item for item in batch if item is not _STOP]
            if batch:
                _answer(self._execute(conn, batch))
        conn.close()


def _answer(results: list[Result]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for future, loop, ok, value in results:
        by_loop.setdefault(loop, []).append((future, ok, value))
    for loop, items in by_loop.items():
        # A closed loop (RuntimeError) means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, items)


def settle(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """Resolves a batch's futures (ok: the value is the result, else the exception)."""
    for future, ok, value in items:
        if future.done():  # the caller was cancelled; the job happened all the same
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
