"""Retention on PostgreSQL: day partitions dropped whole when nothing in them waits, the rest
pruned by rows in short transactions, one node at a time.

What goes (Store.prune, store/base.py), with cutoff = now - period (nothing when period <= 0
or the cutoff is before 1970):

- An event has ended once every delivery of it is SUCCESS, FAILURE or DISCARDED; any other
  status waits and keeps its event whole, with all its deliveries and attempts.
- Whole days. The partitions of day D (events_pD, deliveries_pD, attempts_pD) go when the day
  lies wholly before the cutoff (D + 1 day <= cutoff), before yesterday (a day that
  ensure_partitions would make again stays), and deliveries_pD holds no waiting delivery. They
  go one partition per step, deliveries first, and the retention loop rests at least DROP_REST
  seconds after each (retention.py): the server's work for a drop (unlinking the files after the
  commit, every session's cached plans of the table invalidated) costs the hot writes a little,
  and drops back to back piled it up into the delivery p99 of the benchmark, while drops seconds
  apart did not show. A partition's rows are counted first (a big one's from the table
  statistics once (auto)vacuum or analyze has set them, else exactly), without a lock that would
  hold the hot writes for the count; then one statement, a transaction of its own, locks the
  parent and the partition (lock_timeout 50 ms, tried _LOCK_TRIES times a run: a busy table is
  tried again next run), for deliveries checks again that nothing waits (so nothing slips in
  between), and drops it. The parent is locked for a moment: the statement is a DO block, so no
  round trip to the client lies between the lock and the commit, and a drop only changes the
  catalog, whatever the partition's size (no foreign key refers to a partition: pg_schema.py).
  Once deliveries_pD has gone nothing of the day can wait again, so a day left without it (a run
  that ended between steps) has its other partitions dropped by the next run, after checking
  that the DEFAULT partitions hold none of the day's deliveries and attempts (a day whose
  deliveries partition was never made keeps them there).
- Rows, where a whole day cannot go: a day past the cutoff holding a waiting delivery, the
  DEFAULT partitions, and, with a period under a day, the part of each day before the cutoff.
  With a period of a day or more, an event of a day not yet wholly past the cutoff waits for
  its day's drop: it is kept up to one day beyond the period. A step (one transaction) takes up
  to ``batch`` events by id after a cursor that have no waiting delivery, locks their
  deliveries FOR UPDATE and reads their statuses again (READ COMMITTED: a delivery that a
  concurrent RetryDelivery moved back to waiting is seen as it committed, and keeps its event),
  then deletes the ended ones' attempts, deliveries and events.
- Idempotency keys created before the cutoff are deleted in batches of ``batch``.
- Space: a dropped partition's files go at once. A partition rows were deleted from gets a
  plain VACUUM at the end of a run once the rows deleted from it since its last one reach
  _VACUUM_BASE + _VACUUM_SCALE of its rows (autovacuum's rule, on this schedule), throttled as
  autovacuum is (vacuum_cost_delay), so new rows reuse the space without a VACUUM every run:
  each one reads all of the partition's indexes, which cost ingest latency when a short
  period made it every second.
- Commits: every step commits with synchronous_commit off. A step a crash loses is harmless:
  its rows come back and the next run prunes them again; the hot writes' commits meanwhile
  do not queue behind its WAL flush.
- One node at a time: the run holds pg_try_advisory_lock on one pooled connection and runs
  every step on it; another node's run meanwhile yields nothing. Each step commits on its own,
  so a run cancelled between steps (shutdown) leaves nothing half done.

An event's deliveries get ids made at the same instant as its own (service/events.py), so they
lie in the same day partition: the drops rely on it, and the row deletes' id ranges (which let
the planner skip other days' partitions) too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg

from convoyd.core.ids import id_floor
from convoyd.core.model import PENDING_STATUSES, DeliveryStatus
from convoyd.store import codec, pg_health
from convoyd.store import pg_retention_sql as sql
from convoyd.store.base import Pruned
from convoyd.store.pg_connections import UNREACHABLE, PgConnections, unavailable
from convoyd.store.pg_schema import DAY, day_start

log = logging.getLogger("convoyd.store")

T = TypeVar("T")

# pg_advisory_lock key of the pruning run ("cvyr"), beside pg_connections.py's two.
_RETENTION_LOCK = 0x63767972

ENDED = frozenset({DeliveryStatus.SUCCESS, DeliveryStatus.FAILURE, DeliveryStatus.DISCARDED})
_ENDED_VALUES = frozenset(s.value for s in ENDED)
# "Waiting" is every status but the ended ones; the checks that read the partial index on
# pending deliveries (filters.PENDING) say the same only while these two sets cover them all.
assert set(DeliveryStatus) == ENDED | PENDING_STATUSES

# How often a run tries to lock a busy table for a drop, and the pause between tries.
_LOCK_TRIES = 4
_LOCK_PAUSE = 0.25
# Client-side limit for counting a day's rows and for VACUUM, which may take minutes on a big
# day; neither blocks the hot writes.
_SLOW_STATEMENT = 3600.0
# A day of more deliveries than this has its dropped rows counted from the statistics.
_ESTIMATE_ABOVE = 100_000
# When a partition rows were deleted from is vacuumed (module docstring), and how gently.
_VACUUM_BASE = 1000
_VACUUM_SCALE = 0.2
_VACUUM_COST_DELAY = "2ms"  # autovacuum's default: I/O paced, the hot writes first
# A step that loses a race (deadlock, serialization) is run again from the start.
_RERUN = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
_TRIES = 8


class _Kept(enum.Enum):
    """Why a day's partitions were not dropped."""

    BY_ROWS = "pruned by rows"  # a delivery waits
    LATER = "tried again next run"  # the tables were busy


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    pruned: Pruned
    after: str  # the cursor for the next step; '' when none is left
    # Rows deleted, by the partition they were deleted from.
    parts: dict[str, int] = dataclasses.field(default_factory=dict)


async def _in_transaction(
    conn: asyncpg.Connection, job: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    for attempt in range(1, _TRIES + 1):
        try:
            async with conn.transaction():
                # A step lost in a crash is harmless (its rows are pruned again by the next
                # run), so its commit does not wait for the WAL flush: the hot writes' commits
                # do not queue behind its fsync.
                await conn.execute("SET LOCAL synchronous_commit = off")
                return await job(conn)
        except _RERUN:
            if attempt == _TRIES:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


@contextlib.asynccontextmanager
async def _sole_pruner(db: PgConnections) -> AsyncIterator[asyncpg.Connection | None]:
    """A pooled connection holding the retention lock for the run; None when another node's
    run holds it."""
    conn = await db.pool.acquire()
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RETENTION_LOCK):
            yield None
            return
        try:
            yield conn
        finally:
            # A connection broken (or busy cancelling) by then has its lock released by the
            # server with the session, or by the pool's reset on release.
            with contextlib.suppress(*UNREACHABLE, asyncpg.PostgresError):
                await conn.execute("SELECT pg_advisory_unlock($1)", _RETENTION_LOCK)
    finally:
        await db.pool.release(conn)


class _Run:
    """One pruning run on the connection holding the retention lock."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        *,
        now: float,
        period: float,
        batch: int,
        dead: dict[str, int],
    ):
        self._conn = conn
        self._now = now
        self._cutoff = now - period
        self._by_day = period >= DAY
        self._batch = batch
        self._dead = dead  # rows deleted from each partition since its last VACUUM

    async def steps(self) -> AsyncIterator[Pruned]:
        days = sql.days(r["relname"] for r in await self._conn.fetch(sql.PARTITIONS))
        ranges: list[sql.Range] = []
        for day in days:
            kept: _Kept | None = _Kept.BY_ROWS
            if self._droppable(day):
                async for step in self._drop(day):
                    if isinstance(step, Pruned):
                        yield step
                    else:
                        kept = step
                        break
                else:
                    kept = None
            if kept is _Kept.BY_ROWS and "events" in day.names:
                ranges.extend(self._rows_of(day))
        ranges.append(sql.event_range("events_default", None, self._cutoff))
        for events in ranges:
            async for pruned in self._delete_rows(events):
                yield pruned
        async for pruned in self._delete_keys():
            yield pruned
        # The delivery health counters of hours past the cutoff (not counted in Pruned).
        await pg_health.prune(self._conn, cutoff=self._cutoff, transaction=_in_transaction)
        await self._vacuum()

    async def _vacuum(self) -> None:
        """VACUUM of the partitions due for it (module docstring), paced like autovacuum."""
        if not self._dead:
            return
        sizes = {
            r["relname"]: float(r["n"])
            for r in await self._conn.fetch(sql.RELTUPLES, list(self._dead))
        }
        due = sorted(
            part
            for part, dead in self._dead.items()
            if part not in sizes or dead >= _VACUUM_BASE + _VACUUM_SCALE * sizes[part]
        )
        for part in due:
            if part in sizes:  # not dropped meanwhile
                await self._conn.execute(f"SET vacuum_cost_delay = '{_VACUUM_COST_DELAY}'")
                try:
                    await self._conn.execute(f"VACUUM {part}", timeout=_SLOW_STATEMENT)
                finally:
                    await self._conn.execute("RESET vacuum_cost_delay")
            del self._dead[part]

    async def _rows_in(self, part: str) -> int:
        """The rows of a partition about to be dropped. For a partition of more than
        _ESTIMATE_ABOVE rows, from the statistics (pg_class.reltuples, which (auto)vacuum and
        analyze keep): counting a day of a busy daemon, gigabytes, would load the server just
        when ingest needs it (the benchmark showed it in the p99). Counted exactly, before the
        lock so that the hot writes never wait for it, for a table never vacuumed or analyzed
        (-1) and for a small one, where that is cheap."""
        known = await self._conn.fetchval("SELECT reltuples FROM pg_class WHERE relname = $1", part)
        if known is not None and float(known) >= _ESTIMATE_ABOVE:
            return round(float(known))
        exact = await self._conn.fetchval(
            f"SELECT count(*) FROM {part}",  # noqa: S608 - a catalog name
            timeout=_SLOW_STATEMENT,
        )
        return int(exact)

    def _droppable(self, day: sql.Day) -> bool:
        yesterday = day_start(self._now) - DAY
        return day.start + DAY <= self._cutoff and day.start < yesterday

    def _rows_of(self, day: sql.Day) -> list[sql.Range]:
        """The range of the day's events to prune by rows, if any."""
        end = day.start + DAY
        if end <= self._cutoff:
            return [sql.event_range("events", day.start, end)]
        if not self._by_day and day.start < self._cutoff:
            return [sql.event_range("events", day.start, self._cutoff)]
        return []

    # -- whole days -----------------------------------------------------------------------

    async def _drop(self, day: sql.Day) -> AsyncIterator[Pruned | _Kept]:
        """Drops the day's partitions one per step, deliveries first (module docstring),
        yielding what each took; ends with a _Kept instead when the rest of the day stays."""
        # Attempts are partitioned by their delivery's id: one range serves both checks.
        low, high = id_floor("dl", day.start), id_floor("dl", day.start + DAY)
        for table, query in sql.IN_DEFAULT.items():
            # The day's rows of a table whose partition is missing live in its DEFAULT
            # partition, out of the drops' reach: the day is then pruned by rows.
            if table not in day.names and await self._conn.fetchval(query, low, high):
                yield _Kept.BY_ROWS
                return
        if "deliveries" in day.names and await self._conn.fetchval(
            f"SELECT {sql.waiting(day.names['deliveries'])}"
        ):
            yield _Kept.BY_ROWS
            return
        for table in sql.DROP_ORDER:
            part = day.names.get(table)
            if part is None:
                continue
            rows = await self._rows_in(part)
            dropped = await self._drop_partition(table, part)
            if dropped is not None:
                yield dropped
                return
            yield Pruned(partitions=1, **{table: rows})

    async def _drop_partition(self, table: str, part: str) -> _Kept | None:
        """Drops one partition; None once it has gone, else why it stays."""
        for tries_left in reversed(range(_LOCK_TRIES)):
            try:
                await self._conn.execute(sql.drop_partition(table, part))
            except asyncpg.LockNotAvailableError:
                if tries_left:
                    await asyncio.sleep(_LOCK_PAUSE)
                    continue
                log.info("retention: %s is busy, dropped next run", part)
                return _Kept.LATER
            except asyncpg.PostgresError as exc:
                if exc.sqlstate != sql.STILL_WAITING:
                    raise
                return _Kept.BY_ROWS
            return None
        return _Kept.LATER  # (unreachable: the last try returns)

    # -- rows -----------------------------------------------------------------------------

    async def _delete_rows(self, events: sql.Range) -> AsyncIterator[Pruned]:
        after = ""
        while True:
            step = await _in_transaction(
                self._conn, functools.partial(self._delete_step, events=events, after=after)
            )
            for part, n in step.parts.items():
                self._dead[part] = self._dead.get(part, 0) + n
            if step.pruned != Pruned():
                yield step.pruned
            if not step.after:
                return
            after = step.after

    async def _delete_step(
        self, conn: asyncpg.Connection, *, events: sql.Range, after: str
    ) -> _Step:
        """Deletes the ended events among the next ``batch`` of ``events`` after ``after``."""
        ids = [
            r["id"]
            for r in await conn.fetch(
                sql.CANDIDATES[events.table],
                events.low,
                events.high,
                after,
                events.deliveries_low,
                events.deliveries_high,
                self._batch,
            )
        ]
        if not ids:
            return _Step(Pruned(), "")
        span = (events.deliveries_low, events.deliveries_high)
        deliveries = await conn.fetch(sql.LOCK_DELIVERIES, ids, *span)
        waiting = {r["event_id"] for r in deliveries if r["status"] not in _ENDED_VALUES}
        gone = [i for i in ids if i not in waiting]
        if not gone:
            return _Step(Pruned(), ids[-1])
        ended = [r["id"] for r in deliveries if r["event_id"] not in waiting]
        parts: dict[str, int] = {}
        counts: list[int] = []
        for statement, keys, low, high in (
            (sql.DELETE_ATTEMPTS, ended, *span),
            (sql.DELETE_DELIVERIES, ended, *span),
            (sql.DELETE_EVENTS, gone, ids[0], events.high),
        ):
            rows = await conn.fetch(statement, keys, low, high)
            for r in rows:
                parts[r["part"]] = parts.get(r["part"], 0) + int(r["n"])
            counts.append(sum(int(r["n"]) for r in rows))
        attempts, deleted, events_gone = counts
        return _Step(
            Pruned(events=events_gone, deliveries=deleted, attempts=attempts),
            ids[-1],
            parts,
        )

    async def _delete_keys(self) -> AsyncIterator[Pruned]:
        before = codec.to_us(self._cutoff)

        async def job(conn: asyncpg.Connection) -> int:
            status: str = await conn.execute(sql.DELETE_KEYS, before, self._batch)
            return int(status.split()[-1])

        while True:
            n = await _in_transaction(self._conn, job)
            if n:
                yield Pruned(idempotency_keys=n)
            if n < self._batch:
                return


async def prune(
    db: PgConnections,
    *,
    now: float,
    period: float,
    batch: int,
    dead: dict[str, int] | None = None,
) -> AsyncIterator[Pruned]:
    """Store.prune on PostgreSQL (module docstring); UnavailableError if the server cannot
    be reached."""
    if period <= 0 or now - period <= 0:
        return  # (a cutoff before 1970 has no ids below it; id_floor would wrap around)
    try:
        async with _sole_pruner(db) as conn:
            if conn is None:
                return
            run = _Run(conn, now=now, period=period, batch=batch, dead={} if dead is None else dead)
            async for pruned in run.steps():
                yield pruned
    except UNREACHABLE as exc:
        raise unavailable(exc) from None


async def size_bytes(db: PgConnections) -> int:
    """Store.size_bytes: convoyd's tables (each partition; parents have no storage) with
    their indexes and TOAST."""
    rows = await db.fetch(sql.SIZE)
    return int(rows[0]["n"])
