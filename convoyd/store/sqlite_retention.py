"""Retention on SQLite: ended events past the period leave in small writer jobs, and the pages
they held are reused or given back.

Each step is one job on the single writer (writer.py), so it joins a group commit between the
hot writes instead of holding the database: it looks at up to ``batch`` events older than the
cutoff, in id (creation) order after a cursor, keeps those with a delivery still waiting, and
deletes the others with their deliveries and attempts. The choice and the deletes run in the
same job, so a delivery that RetryDelivery has just moved back to waiting is seen and kept.
Idempotency keys live on their event's row: they leave with it, and matching also ignores
keys older than the period (service/events.py), whether or not their event is still kept.

Space: freed pages go on SQLite's freelist and the next inserts reuse them, so under a steady
load the file stops growing after the first period. A database made with
``auto_vacuum = INCREMENTAL`` (every one convoyd creates, connections.py) also shrinks: after a
run, the free pages that were already free before it began (so not reused by the load since
the last run) are released with ``PRAGMA incremental_vacuum``, a few megabytes per job. The
pages this run freed stay for the coming inserts: a steady load keeps a steady file, a load
that drops lets the file shrink to what it needs.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable

from convoyd.core.ids import id_floor
from convoyd.store import health_sql
from convoyd.store.base import Pruned
from convoyd.store.connections import SqliteConnections

# A step is one writer job, and the ingests that share its group commit wait for it: it works
# in chunks of CHUNK events (about half a millisecond each with one delivery and one attempt)
# and stops after STEP_BUDGET seconds, so it adds about a millisecond to one group. Steps follow
# one another, one per group, until the run is done.
CHUNK = 25
STEP_BUDGET = 0.001
# Pages released per writer job: 64 pages of 4 KiB, about a millisecond of moving pages.
_VACUUM_PAGES = 64
_ENDED = "('discarded', 'failure', 'success')"
_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _prune_chunk(
    conn: sqlite3.Connection, *, below: str, after: str, limit: int
) -> tuple[Pruned, str]:
    """Removes the ended events among the next ``limit`` with ids in (``after``, ``below``);
    returns what went and the last id looked at ('' when none was left)."""
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM events WHERE id > ? AND id < ? ORDER BY id LIMIT ?",
            (after, below, limit),
        )
    ]
    if not ids:
        return Pruned(), ""
    waiting = {
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT event_id FROM deliveries WHERE event_id IN ({_marks(len(ids))})"  # noqa: S608 - placeholders only
            f" AND status NOT IN {_ENDED}",
            ids,
        )
    }
    gone = [i for i in ids if i not in waiting]
    if not gone:
        return Pruned(), ids[-1]
    marks = _marks(len(gone))
    attempts = conn.execute(
        "DELETE FROM attempts WHERE delivery_id IN"  # noqa: S608 - placeholders only
        f" (SELECT id FROM deliveries WHERE event_id IN ({marks}))",
        gone,
    ).rowcount
    deliveries = conn.execute(
        f"DELETE FROM deliveries WHERE event_id IN ({marks})",  # noqa: S608 - placeholders only
        gone,
    ).rowcount
    events = conn.execute(
        f"DELETE FROM events WHERE id IN ({marks})",  # noqa: S608 - placeholders only
        gone,
    ).rowcount
    return Pruned(events=events, deliveries=deliveries, attempts=attempts), ids[-1]


def prune_step(
    conn: sqlite3.Connection,
    *,
    below: str,
    after: str,
    batch: int,
    budget: float = STEP_BUDGET,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[Pruned, str]:
    """One writer job: chunks of CHUNK events until ``batch`` were looked at or ``budget``
    seconds went by; returns what went and the cursor for the next step ('' when none is
    left). The budget bounds what the ingests sharing this job's group commit wait for."""
    started = clock()
    total = Pruned()
    seen = 0
    while True:
        step, after = _prune_chunk(conn, below=below, after=after, limit=min(CHUNK, batch - seen))
        total = Pruned(
            events=total.events + step.events,
            deliveries=total.deliveries + step.deliveries,
            attempts=total.attempts + step.attempts,
        )
        seen += CHUNK
        if not after or seen >= batch or clock() - started >= budget:
            return total, after


def _free_pages(conn: sqlite3.Connection) -> tuple[int, int]:
    """(auto_vacuum mode, pages on the freelist)."""
    mode = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(mode), int(free)


def _release(conn: sqlite3.Connection, pages: int) -> int:
    """Gives ``pages`` free pages (at most) back to the file system; returns how many went."""
    before = conn.execute("PRAGMA freelist_count").fetchone()[0]
    conn.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
    after = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(before) - int(after)


async def prune(
    db: SqliteConnections, *, now: float, period: float, batch: int
) -> AsyncIterator[Pruned]:
    """Store.prune on SQLite (store/base.py): steps of ``batch`` events, then the release of
    free pages left over from before the run."""
    if period <= 0 or now - period <= 0:  # id_floor wraps below the epoch: nothing is older
        return
    mode, free_before = await db.write(_free_pages)
    below = id_floor("ev", now - period)
    after = ""
    while True:
        step, after = await db.write(
            functools.partial(prune_step, below=below, after=after, batch=batch)
        )
        if step != Pruned():
            yield step
        if not after:
            break
    # The delivery health counters of hours past the cutoff (not counted in Pruned).
    await health_sql.prune(db, cutoff=now - period)
    if mode != _INCREMENTAL:
        return
    _, free_after = await db.write(_free_pages)
    left = min(free_before, free_after)
    while left > 0:
        released = await db.write(functools.partial(_release, pages=min(left, _VACUUM_PAGES)))
        if released <= 0:
            break
        left -= released


def size_bytes(db: SqliteConnections) -> int:
    """The database file and its WAL, as they stand on disk."""
    total = 0
    for path in (db.path, db.path.with_name(db.path.name + "-wal")):
        try:
            total += os.stat(path).st_size
        except FileNotFoundError:
            continue
    return total
