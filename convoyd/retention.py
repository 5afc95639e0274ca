"""Retention: every ``retention.interval`` seconds, events older than ``retention.period`` whose
deliveries have all ended leave the store with their deliveries and attempts.

The store decides how (store/base.py ``Store.prune``: small steps between the hot writes on
SQLite, day partitions dropped whole on PostgreSQL); this loop decides when, counts what went
(convoyd_retention_pruned_total{kind}) and keeps convoyd_store_size_bytes fresh. A run that
fails (the database is away) is logged and tried again at the next interval: nothing is
removed that should not be, only later. docs/operations.md, "Retention", says it for operators.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from convoyd.errors import ConvoydError
from convoyd.metrics import Metrics
from convoyd.settings import RetentionSettings
from convoyd.store.base import Pruned, Store

log = logging.getLogger("convoyd.retention")

# Events looked at per step: one step is one short writer job (SQLite) or transaction
# (PostgreSQL), a few milliseconds, so ingest and delivery wait at most that long for it.
BATCH = 200
# The size gauge is read this often even when runs are hours apart.
SIZE_EVERY = 60.0
# The least rest after a step that dropped a partition (PostgreSQL): the server's work for a
# drop (unlinking the files, every session replanning the table's statements) costs the hot
# writes a little each; drops back to back let it pile up into the delivery p99, while drops
# seconds apart each pass unseen (benchmarks/bench_retention.py, the days path). A day's three
# partitions then take a few seconds, once a day.
DROP_REST = 3.0
# The first run comes one interval after start, but never later than this: a daemon that is
# restarted more often than its interval still prunes.
FIRST_RUN_BY = 300.0


def add(total: Pruned, step: Pruned) -> Pruned:
    return Pruned(
        **{
            f.name: getattr(total, f.name) + getattr(step, f.name)
            for f in dataclasses.fields(Pruned)
        }
    )


class Retention:
    """The pruning loop of one node. ``settings`` is read at each run, so a SIGHUP's new
    period applies from the next run and its new interval from the one after."""

    def __init__(
        self,
        store: Store,
        *,
        settings: Callable[[], RetentionSettings],
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        batch: int = BATCH,
        pace: float = 1.0,
        drop_rest: float = DROP_REST,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``pace``: seconds of rest after each step per second the step took (0: none);
        ``drop_rest``: the least rest after a step that dropped a partition."""
        self._store = store
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._batch = batch
        self._pace = pace
        self._drop_rest = drop_rest
        self._monotonic = monotonic
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self.runs = 0  # complete runs so far

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="convoyd-retention")

    async def stop(self) -> None:
        """Ends the loop between two steps; what a step committed stays done."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> Pruned:
        """One run: every step of the store's pruning; returns the totals. A store error
        ends the run early (logged); the next run takes over from there."""
        period = self._settings().period
        started = self._monotonic()
        total = Pruned()
        if period > 0:
            try:
                stepped = self._monotonic()
                async for step in self._store.prune(
                    now=self._clock(), period=period, batch=self._batch
                ):
                    total = add(total, step)
                    if self._metrics is not None:
                        self._metrics.pruned(step)
                    # Rest as long as the step took: pruning takes at most about half of the
                    # store's time, in short steps spread out, never in one long burst; and
                    # drops of whole partitions seconds apart (DROP_REST).
                    rest = self._pace * (self._monotonic() - stepped)
                    if step.partitions:
                        rest = max(rest, self._drop_rest)
                    await self._sleep(rest)
                    stepped = self._monotonic()
            except ConvoydError as exc:
                log.warning("retention run stopped, trying again at the next interval: %s", exc)
                return total
            except Exception:
                log.exception("retention run failed; trying again at the next interval")
                return total
        took = self._monotonic() - started
        self.runs += 1
        if self._metrics is not None:
            self._metrics.retention_last_run.set(self._clock())
            self._metrics.retention_duration.set(took)
        if total != Pruned():
            log.info(
                "retention pruned old events",
                extra={
                    **{f.name: getattr(total, f.name) for f in dataclasses.fields(Pruned)},
                    "seconds": round(took, 3),
                },
            )
        return total

    async def measure(self) -> None:
        """Reads the store's size into convoyd_store_size_bytes."""
        if self._metrics is None:
            return
        try:
            self._metrics.store_size.set(await self._store.size_bytes())
        except ConvoydError as exc:
            log.debug("could not read the store's size: %s", exc)
        except Exception:
            log.exception("could not read the store's size")

    async def _loop(self) -> None:
        await self.measure()
        due = self._monotonic() + min(self._settings().interval, FIRST_RUN_BY)
        while True:
            await asyncio.sleep(max(0.0, min(due - self._monotonic(), SIZE_EVERY)))
            if self._monotonic() >= due:
                await self.run_once()
                due = self._monotonic() + self._settings().interval
            await self.measure()
