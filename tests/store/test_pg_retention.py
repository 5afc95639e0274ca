"""Retention on a real PostgreSQL (store/pg_retention.py): old days' partitions dropped whole
when nothing in them waits, the rest pruned by rows, a day's worth of slack when the period is
a day or more, and one node at a time. The contract both stores share is
test_contract_retention.py.

Rows land in an old day as an ingest on that day would put them: that day's partitions are
made (ensure_partitions with that day as now) and the ids are made at times of that day.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from convoyd.core.model import DeliveryStatus, Endpoint
from convoyd.errors import UnavailableError
from convoyd.retention import add
from convoyd.settings import PostgresSettings
from convoyd.store import pg_retention, pg_retention_sql
from convoyd.store.base import IngestNeeds, IngestWrite, Pruned
from convoyd.store.pg import PostgresStore
from convoyd.store.pg_connections import PgConnections
from convoyd.store.pg_schema import DAY, PARTITIONED, day_start, partition_ddl
from tests.pgserver import lock_waiters
from tests.store.contract_data import T0, endpoint, event_write, gone, made_at, outcome, whole

S = DeliveryStatus
TODAY = day_start(T0)
NOON = TODAY + DAY / 2  # the runs' "now", so that times of day below are the same every run
OLD = TODAY - 10 * DAY + 3600.0  # 01:00 on a day ten days back


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[PgConnections]:
    """A pool of its own on the test's database: makes partitions and reads the catalog."""
    conns = PgConnections(PostgresSettings(dsn=postgres_dsn))
    await conns.open(maintain=False)
    yield conns
    await conns.close()


async def open_store(dsn: str) -> PostgresStore:
    store = PostgresStore(PostgresSettings(dsn=dsn))
    await store.open()
    return store


@pytest.fixture
async def store(postgres_dsn: str, db: PgConnections) -> AsyncIterator[PostgresStore]:
    s = await open_store(postgres_dsn)
    yield s
    await s.close()


@pytest.fixture
async def ep(store: PostgresStore) -> Endpoint:
    e = endpoint()
    await store.insert_endpoint(e)
    return e


async def stored(
    store: PostgresStore,
    ep: Endpoint,
    statuses: Sequence[DeliveryStatus],
    *,
    at: float,
    data: bytes = b"",
) -> IngestWrite:
    """An event made at ``at`` with one delivery per status, each after one attempt (none
    for SCHEDULED and DISCARDED)."""
    initial = [S.DISCARDED if s is S.DISCARDED else S.SCHEDULED for s in statuses]
    w = made_at(event_write([ep] * len(statuses), statuses=initial), at)
    if data:
        w = dataclasses.replace(w, event=dataclasses.replace(w.event, data=data))
    await store.ingest(IngestNeeds(), lambda _: [w])
    records = [
        outcome(d, 1, status, http=200 if status is S.SUCCESS else 500)
        for d, status in zip(w.deliveries, statuses, strict=True)
        if status not in (S.SCHEDULED, S.DISCARDED)
    ]
    if records:
        await store.record(records)
    return w


async def prune(
    store: PostgresStore, *, period: float, now: float = NOON, batch: int = 100
) -> list[Pruned]:
    return [step async for step in store.prune(now=now, period=period, batch=batch)]


def dropped_day(events: int, deliveries: int, attempts: int) -> list[Pruned]:
    """The steps that drop a day's partitions: one each, deliveries first."""
    return [
        Pruned(partitions=1, deliveries=deliveries),
        Pruned(partitions=1, attempts=attempts),
        Pruned(partitions=1, events=events),
    ]


def total(steps: Sequence[Pruned]) -> Pruned:
    out = Pruned()
    for step in steps:
        out = add(out, step)
    return out


async def partitions(db: PgConnections) -> set[str]:
    rows = await db.fetch(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
    )
    return {r["relname"] for r in rows}


def day_partitions(day: float) -> set[str]:
    return {partition_ddl(table, prefix, day)[0] for table, prefix in PARTITIONED}


async def old_days(db: PgConnections, at: float) -> list[float]:
    """Makes the partitions of ``at``'s day (and of the days ensure_partitions makes around
    it); returns those days."""
    made = await db.ensure_partitions(at)
    first = day_start(at) - DAY
    days = [first + n * DAY for n in range(5)]
    assert set(made) == set().union(*(day_partitions(d) for d in days))
    return days


async def one_old_day(db: PgConnections, *, without: str = "") -> None:
    """Makes the partitions of OLD's day alone (but for the one of table ``without``)."""
    for table, prefix in PARTITIONED:
        if table != without:
            await db.execute(partition_ddl(table, prefix, day_start(OLD))[1])


# -- whole days -------------------------------------------------------------------------------


async def test_an_old_day_whose_deliveries_have_all_ended_is_dropped_whole(
    store: PostgresStore, db: PgConnections, ep: Endpoint
) -> None:
    days = await old_days(db, OLD)
    writes = [
        await stored(store, ep, [S.SUCCESS], at=OLD),
        await stored(store, ep, [S.FAILURE, S.DISCARDED], at=OLD + 60),
        await stored(store, ep, [S.SUCCESS, S.SUCCESS, S.FAILURE], at=OLD + 120),
    ]
    young = await stored(store, ep, [S.SUCCESS], at=NOON - DAY)  # yesterday's partitions

    steps = await prune(store, period=2 * DAY)

    # Every day ensure_partitions made back then goes, a partition a step, deliveries first;
    # the one with rows counted exactly.
    assert [s.partitions for s in steps] == [1] * 3 * len(days)
    assert dropped_day(3, 6, 5) in [steps[n : n + 3] for n in range(0, len(steps), 3)]
    assert total(steps) == Pruned(partitions=15, events=3, deliveries=6, attempts=5)
    left = await partitions(db)
    for day in days:
        assert not day_partitions(day) & left
    assert day_partitions(TODAY - DAY) | day_partitions(TODAY) <= left
    for w in writes:
        assert await gone(store, w)
    assert await whole(store, young)
    assert await prune(store, period=2 * DAY) == []


async def test_an_old_day_holding_a_waiting_delivery_is_pruned_by_rows_until_it_ends(
    store: PostgresStore, db: PgConnections, ep: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_retention, "_VACUUM_BASE", 0)  # a VACUUM after any row delete
    await old_days(db, OLD)
    ended = await stored(store, ep, [S.SUCCESS], at=OLD)
    waiting = await stored(store, ep, [S.SUCCESS, S.RETRY], at=OLD + 60)
    failed = await stored(store, ep, [S.FAILURE], at=OLD + 120)
    held = day_partitions(day_start(OLD))

    steps = await prune(store, period=2 * DAY)

    assert Pruned(events=2, deliveries=2, attempts=2) in steps
    assert total(steps) == Pruned(partitions=12, events=2, deliveries=2, attempts=2)
    assert held <= await partitions(db)
    assert await gone(store, ended)
    assert await gone(store, failed)
    assert await whole(store, waiting)
    vacuumed = await db.fetch(
        "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL"
    )
    assert held <= {r["relname"] for r in vacuumed}

    # The waiting delivery ends: the next run drops the day, counting what was left.
    retrying = waiting.deliveries[1]
    await store.record([outcome(retrying, 2, S.SUCCESS, http=200)])
    steps = await prune(store, period=2 * DAY)
    assert steps == dropped_day(1, 2, 3)
    assert not held & await partitions(db)
    assert await gone(store, waiting)


async def test_a_day_whose_tables_are_busy_is_dropped_by_a_later_run(
    store: PostgresStore, db: PgConnections, ep: Endpoint, postgres_dsn: str
) -> None:
    await one_old_day(db)
    w = await stored(store, ep, [S.SUCCESS], at=OLD)
    reader = await asyncpg.connect(postgres_dsn)
    try:
        # An open transaction that has read the deliveries table: the drop cannot take it.
        async with reader.transaction():
            await reader.fetch("SELECT id FROM deliveries LIMIT 1")
            assert await prune(store, period=2 * DAY) == []
        assert await whole(store, w)
        assert day_partitions(day_start(OLD)) <= await partitions(db)
    finally:
        await reader.close()

    assert total(await prune(store, period=2 * DAY)).events == 1
    assert await gone(store, w)


async def test_a_day_left_without_its_deliveries_partition_loses_the_rest_next_run(
    store: PostgresStore, db: PgConnections, ep: Endpoint, postgres_dsn: str
) -> None:
    # The events table is busy: the day's deliveries and attempts go, a step each, and its
    # events partition stays; nothing of the day can wait any more, so the next run drops it.
    await one_old_day(db)
    w = await stored(store, ep, [S.SUCCESS, S.FAILURE], at=OLD)
    reader = await asyncpg.connect(postgres_dsn)
    try:
        async with reader.transaction():
            await reader.fetch("SELECT id FROM events LIMIT 1")
            steps = await prune(store, period=2 * DAY)
    finally:
        await reader.close()
    assert steps == dropped_day(1, 2, 2)[:2]
    assert day_partitions(day_start(OLD)) & await partitions(db) == {
        partition_ddl("events", "ev", day_start(OLD))[0]
    }

    assert await prune(store, period=2 * DAY) == [Pruned(partitions=1, events=1)]
    assert not day_partitions(day_start(OLD)) & await partitions(db)
    assert await gone(store, w)


async def test_a_day_whose_deliveries_live_in_the_default_partition_is_pruned_by_rows(
    store: PostgresStore, db: PgConnections, ep: Endpoint
) -> None:
    # Making the day's deliveries partition failed: its deliveries went to the DEFAULT one, out
    # of a drop's reach. Its events are pruned by rows, the waiting one kept; once the day's
    # last delivery has ended and gone, the day's other partitions are dropped.
    await one_old_day(db, without="deliveries")
    ended = await stored(store, ep, [S.SUCCESS], at=OLD)
    waiting = await stored(store, ep, [S.RETRY], at=OLD + 60)

    steps = await prune(store, period=2 * DAY)
    assert total(steps) == Pruned(events=1, deliveries=1, attempts=1)
    assert await gone(store, ended)
    assert await whole(store, waiting)

    await store.record([outcome(waiting.deliveries[0], 2, S.SUCCESS, http=200)])
    steps = await prune(store, period=2 * DAY)
    assert total(steps) == Pruned(events=1, deliveries=1, attempts=2)
    assert await gone(store, waiting)
    assert await prune(store, period=2 * DAY) == [
        Pruned(partitions=1, attempts=0),
        Pruned(partitions=1, events=0),
    ]
    assert not day_partitions(day_start(OLD)) & await partitions(db)


async def test_a_delivery_sent_again_while_the_drop_waits_for_the_tables_keeps_its_day(
    store: PostgresStore,
    db: PgConnections,
    ep: Endpoint,
    postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only this old day exists, so the drop that waits is its own; and it waits long enough
    # for the commit below however slow the machine.
    monkeypatch.setattr(pg_retention_sql, "LOCK_WAIT", "30s")
    await one_old_day(db)
    ended = await stored(store, ep, [S.SUCCESS], at=OLD)
    sent_again = await stored(store, ep, [S.FAILURE], at=OLD + 60)
    (d,) = sent_again.deliveries
    other = await asyncpg.connect(postgres_dsn)
    try:
        # RetryDelivery's transaction, not yet committed when the run first looks at the
        # day (nothing waits there), committed while the drop waits for the tables.
        tx = other.transaction()
        await tx.start()
        await other.execute("UPDATE deliveries SET status = 'scheduled' WHERE id = $1", d.id)
        run = asyncio.create_task(prune(store, period=2 * DAY))
        await lock_waiters(other, 1)
        await tx.commit()
        steps = await run
    finally:
        await other.close()

    assert steps == [Pruned(events=1, deliveries=1, attempts=1)]
    assert day_partitions(day_start(OLD)) <= await partitions(db)
    assert await gone(store, ended)
    assert await whole(store, sent_again)
    assert (await store.get_delivery(d.id)).status is S.SCHEDULED


async def test_a_big_day_is_dropped_whole_while_an_endpoint_is_being_edited(
    store: PostgresStore, db: PgConnections, ep: Endpoint, postgres_dsn: str
) -> None:
    # However many rows the day holds, the drop changes only the catalog, and it takes no lock
    # on endpoints: no foreign key refers to the day's partitions. (The detach that a foreign
    # key from attempts required checked every attempt against the deliveries, and waited for
    # the endpoint's edit, for the partition's own foreign key to endpoints.)
    await one_old_day(db)
    writes = [
        made_at(event_write([ep, ep], statuses=[S.SCHEDULED, S.SCHEDULED]), OLD + n / 100)
        for n in range(2000)
    ]
    await store.ingest(IngestNeeds(), lambda _: writes)
    await store.record(
        [
            outcome(d, 1, s)
            for w in writes
            for d, s in zip(w.deliveries, [S.SUCCESS, S.FAILURE], strict=True)
        ]
    )
    held = day_partitions(day_start(OLD))
    editor = await asyncpg.connect(postgres_dsn)
    try:
        async with editor.transaction():
            await editor.execute("UPDATE endpoints SET name = name WHERE id = $1", ep.id)
            steps = await prune(store, period=2 * DAY)
    finally:
        await editor.close()

    assert steps == dropped_day(2000, 4000, 4000)
    assert not held & await partitions(db)
    assert await gone(store, writes[0])
    assert await gone(store, writes[-1])


async def test_yesterday_is_never_dropped_but_pruned_by_rows(
    store: PostgresStore, db: PgConnections, ep: Endpoint
) -> None:
    # A period of an hour: yesterday lies wholly before the cutoff, but ensure_partitions
    # would make its partitions again, so its rows go one by one.
    w = await stored(store, ep, [S.SUCCESS], at=TODAY - DAY + 3600)

    steps = await prune(store, period=3600.0)

    assert steps == [Pruned(events=1, deliveries=1, attempts=1)]
    assert day_partitions(TODAY - DAY) <= await partitions(db)
    assert await gone(store, w)


# -- rows -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "pruned"),
    [(2 * DAY, False), (1.25 * DAY, False), (DAY / 4, True), (3600.0, True)],
    ids=["two-days", "a-day-and-a-quarter", "a-quarter-day", "an-hour"],
)
async def test_a_day_not_wholly_past_the_cutoff_waits_for_its_drop_unless_the_period_is_short(
    store: PostgresStore, db: PgConnections, ep: Endpoint, period: float, pruned: bool
) -> None:
    """The event lies three hours before the cutoff, in a day that reaches past it: with a
    period of a day or more it waits for its day's drop (kept up to a day longer), with a
    shorter one it goes by rows."""
    cutoff = NOON - period
    await db.ensure_partitions(cutoff)
    w = await stored(store, ep, [S.SUCCESS], at=cutoff - 3 * 3600)
    young = await stored(store, ep, [S.SUCCESS], at=cutoff + 60)

    removed = total(await prune(store, period=period))

    # (The older days ensure_partitions made around the cutoff are dropped, empty.)
    rows = Pruned(events=1, deliveries=1, attempts=1) if pruned else Pruned()
    assert dataclasses.replace(removed, partitions=0) == rows
    assert await gone(store, w) is pruned
    assert await whole(store, young)


async def test_rows_in_the_default_partitions_are_pruned_by_rows(
    store: PostgresStore, db: PgConnections, ep: Endpoint
) -> None:
    # 1970: no partition holds such ids, as with a clock far off.
    ended = await stored(store, ep, [S.SUCCESS, S.FAILURE], at=1000.0)
    waiting = await stored(store, ep, [S.RETRY], at=1001.0)
    rows = await db.fetch(
        "SELECT tableoid::regclass::text AS part FROM deliveries WHERE event_id = $1",
        ended.event.id,
    )
    assert {r["part"] for r in rows} == {"deliveries_default"}

    steps = await prune(store, period=2 * DAY, batch=1)

    assert steps == [Pruned(events=1, deliveries=2, attempts=2)]
    assert await gone(store, ended)
    assert await whole(store, waiting)


@pytest.mark.parametrize("outcome_of_retry", ["commit", "rollback"])
async def test_a_delivery_sent_again_while_the_step_waits_for_it_keeps_its_event(
    store: PostgresStore, ep: Endpoint, postgres_dsn: str, outcome_of_retry: str
) -> None:
    w = await stored(store, ep, [S.FAILURE], at=NOON - 7200)
    (d,) = w.deliveries
    other = await asyncpg.connect(postgres_dsn)
    try:
        # RetryDelivery's transaction, caught between its write and its commit: the step
        # chooses the event (its delivery still reads FAILURE), then waits for the row.
        tx = other.transaction()
        await tx.start()
        await other.execute("UPDATE deliveries SET status = 'scheduled' WHERE id = $1", d.id)
        run = asyncio.create_task(prune(store, period=3600.0))
        await lock_waiters(other, 1)
        await (tx.commit() if outcome_of_retry == "commit" else tx.rollback())
        steps = await run
    finally:
        await other.close()

    if outcome_of_retry == "commit":
        assert steps == []
        assert await whole(store, w)
        assert (await store.get_delivery(d.id)).status is S.SCHEDULED
    else:
        assert steps == [Pruned(events=1, deliveries=1, attempts=1)]
        assert await gone(store, w)


async def test_a_run_cancelled_while_a_step_waits_leaves_nothing_half_done(
    store: PostgresStore, ep: Endpoint, postgres_dsn: str
) -> None:
    ended = [await stored(store, ep, [S.SUCCESS], at=NOON - 7200 + n) for n in range(3)]
    other = await asyncpg.connect(postgres_dsn)
    try:
        # The first step waits for a row this transaction holds; the daemon shuts down.
        tx = other.transaction()
        await tx.start()
        await other.execute(
            "SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE", ended[0].deliveries[0].id
        )
        run = asyncio.create_task(prune(store, period=3600.0, batch=2))
        await lock_waiters(other, 1)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        await tx.rollback()
        for w in ended:
            assert await whole(store, w)
        assert (
            await other.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
        )
    finally:
        await other.close()

    # The retention lock went with the run: the next one (any node) takes it and prunes.
    assert total(await prune(store, period=3600.0)).events == 3


async def test_a_connection_lost_during_a_run_is_unavailable_and_the_next_run_prunes(
    store: PostgresStore, ep: Endpoint, postgres_dsn: str
) -> None:
    w = await stored(store, ep, [S.SUCCESS], at=NOON - 7200)
    other = await asyncpg.connect(postgres_dsn)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE", w.deliveries[0].id)
        run = asyncio.create_task(prune(store, period=3600.0))
        await lock_waiters(other, 1)
        # The server ends the run's session, as a failover or a restart would.
        await other.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        with pytest.raises(UnavailableError, match="the database is unavailable"):
            await run
        await tx.rollback()
    finally:
        await other.close()

    assert await whole(store, w)
    assert total(await prune(store, period=3600.0)).events == 1


@pytest.mark.parametrize(
    "period", [0.0, -1.0, 100 * 365 * DAY], ids=["zero", "negative", "century"]
)
async def test_a_period_of_zero_or_reaching_before_1970_prunes_nothing(
    store: PostgresStore, db: PgConnections, ep: Endpoint, period: float
) -> None:
    old = await stored(store, ep, [S.SUCCESS], at=1000.0)
    keyed = event_write([ep], key="k", at=1000.0, statuses=[S.DISCARDED])
    await store.ingest(IngestNeeds(), lambda _: [keyed])

    assert await prune(store, period=period) == []
    assert await whole(store, old)
    assert await whole(store, keyed)


# -- idempotency keys, nodes, size ------------------------------------------------------------


async def test_idempotency_keys_older_than_the_cutoff_are_deleted_in_batches(
    store: PostgresStore, db: PgConnections, ep: Endpoint
) -> None:
    cutoff = NOON - 3600.0
    keys = {"old-1": cutoff - 30, "old-2": cutoff - 20, "old-3": cutoff - 10, "young": cutoff}
    # Their events still wait, so only the keys can go.
    writes = [event_write([ep], key=key, at=at) for key, at in keys.items()]
    await store.ingest(IngestNeeds(), lambda _: writes)

    steps = await prune(store, period=3600.0, batch=2)

    assert steps == [Pruned(idempotency_keys=2), Pruned(idempotency_keys=1)]
    rows = await db.fetch("SELECT key FROM idempotency_keys")
    assert [r["key"] for r in rows] == ["young"]


async def test_nodes_pruning_at_once_remove_each_row_once(
    store: PostgresStore, db: PgConnections, ep: Endpoint, postgres_dsn: str
) -> None:
    days = await old_days(db, OLD)
    for n in range(4):
        await stored(store, ep, [S.SUCCESS, S.FAILURE], at=OLD + n)
    for n in range(5):
        await stored(store, ep, [S.SUCCESS], at=NOON - 7200 + n)
    await stored(store, ep, [S.RETRY], at=NOON - 7200 + 10)
    others = [await open_store(postgres_dsn) for _ in range(2)]
    try:
        runs = await asyncio.gather(
            *(prune(node, period=3600.0, batch=1) for node in [store, *others])
        )
    finally:
        for other in others:
            await other.close()

    assert total([total(run) for run in runs]) == Pruned(
        partitions=3 * len(days), events=9, deliveries=13, attempts=13
    )
    assert sum(1 for run in runs if run) == 1  # one node pruned, the others found it busy


async def test_the_size_is_positive_and_shrinks_when_a_big_day_is_dropped(
    store: PostgresStore, db: PgConnections, ep: Endpoint
) -> None:
    await old_days(db, OLD)
    rng = random.Random(7)
    for n in range(50):
        await stored(store, ep, [S.SUCCESS], at=OLD + n, data=rng.randbytes(20_000))
    before = await store.size_bytes()
    assert before > 1_000_000

    assert total(await prune(store, period=2 * DAY)).events == 50

    assert 0 < await store.size_bytes() < before - 1_000_000


async def test_a_partition_is_vacuumed_once_enough_rows_were_deleted_from_it(
    store: PostgresStore, db: PgConnections, ep: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two rows deleted per run from each of today's partitions; a VACUUM is due at three.
    monkeypatch.setattr(pg_retention, "_VACUUM_BASE", 3)
    monkeypatch.setattr(pg_retention, "_VACUUM_SCALE", 0.0)
    today = day_partitions(TODAY)

    async def vacuumed() -> set[str]:
        rows = await db.fetch(
            "SELECT relname FROM pg_stat_user_tables WHERE vacuum_count > 0"
            " AND relname = ANY($1::text[])",
            sorted(today),
        )
        return {r["relname"] for r in rows}

    for n in range(2):
        await stored(store, ep, [S.SUCCESS], at=TODAY + 60 + n)
    assert total(await prune(store, period=3600)).events == 2
    assert await vacuumed() == set()

    for n in range(2):
        await stored(store, ep, [S.SUCCESS], at=TODAY + 120 + n)
    assert total(await prune(store, period=3600)).events == 2
    assert await vacuumed() == today
