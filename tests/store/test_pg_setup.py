"""The PostgreSQL store's setup on a real server: nodes starting at once migrate once, a
database an older convoyd made is brought up to date, the coming days' partitions exist, and
commits are durable whatever the database's default."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from convoyd.core.model import DeliveryStatus
from convoyd.settings import PostgresSettings
from convoyd.store import codec, pg_schema
from convoyd.store.base import IngestWrite
from convoyd.store.pg import PostgresStore
from convoyd.store.pg_connections import DAYS_AHEAD, PgConnections
from tests.store.contract_data import endpoint, event_write, outcome

# Every foreign key on attempts (its partitions' copies included) or naming deliveries.
_ATTEMPT_KEYS = (
    "SELECT conname, conrelid::regclass::text AS on_table FROM pg_constraint WHERE contype = 'f'"
    " AND (conrelid IN (SELECT relid FROM pg_partition_tree('attempts'))"
    " OR confrelid IN (SELECT relid FROM pg_partition_tree('deliveries')))"
)


async def test_nodes_starting_at_once_apply_each_migration_once(postgres_dsn: str) -> None:
    nodes = [PgConnections(PostgresSettings(dsn=postgres_dsn)) for _ in range(4)]
    try:
        await asyncio.gather(*(n.open() for n in nodes))
        assert sorted(n.migrations_applied for n in nodes) == [0, 0, 0, pg_schema.LATEST]
        rows = await nodes[0].fetch("SELECT version FROM convoyd_migrations ORDER BY version")
        assert [r["version"] for r in rows] == list(range(1, pg_schema.LATEST + 1))
    finally:
        await asyncio.gather(*(n.close() for n in nodes))


# Event columns later migrations added (5: trace_context), which a version-2 database lacks.
_LATER_EVENT_COLUMNS = ("trace_context",)


async def _insert_as_version_2(dsn: str, write: IngestWrite) -> None:
    """``write``'s event and deliveries as a convoyd of schema version 2 stored them (today's
    ingest writes columns that schema does not have)."""
    names = [n for n in codec.EVENT_INSERT_NAMES if n not in _LATER_EVENT_COLUMNS]
    row = dict(
        zip(codec.EVENT_INSERT_NAMES, codec.event_insert_row(write.event, b"h"), strict=True)
    )
    conn = await asyncpg.connect(dsn)
    try:
        marks = ", ".join(f"${n}" for n in range(1, len(names) + 1))
        await conn.execute(
            f"INSERT INTO events ({', '.join(names)}) VALUES ({marks})",  # noqa: S608 - constant columns
            *(row[n] for n in names),
        )
        marks = ", ".join(f"${n}" for n in range(1, len(codec.DELIVERY_NAMES) + 1))
        for d in write.deliveries:
            await conn.execute(
                f"INSERT INTO deliveries ({codec.DELIVERY_COLUMNS}) VALUES ({marks})",  # noqa: S608 - constant columns
                *codec.delivery_to_row(d),
            )
    finally:
        await conn.close()


async def test_migration_3_drops_the_foreign_key_of_attempts_on_a_database_at_version_2(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database as a convoyd of schema version 2 leaves it: partitions made, rows stored.
    monkeypatch.setattr(pg_schema, "LATEST", 2)
    old = PostgresStore(PostgresSettings(dsn=postgres_dsn))
    await old.open()
    try:
        ep = endpoint()
        await old.insert_endpoint(ep)
        w = event_write([ep])
        (d,) = w.deliveries
        await _insert_as_version_2(postgres_dsn, w)
        # Its attempt as that convoyd stored it: today's record() also counts into the table
        # of migration 6 (delivery health), which a version-2 database lacks.
        attempt = outcome(d, 1, DeliveryStatus.RETRY).attempt
        assert attempt is not None
        marks = ", ".join(f"${n}" for n in range(1, len(codec.ATTEMPT_NAMES) + 1))
        await old._db.execute(
            f"INSERT INTO attempts ({codec.ATTEMPT_COLUMNS}) VALUES ({marks})",  # noqa: S608 - constant columns
            *codec.attempt_to_row(attempt),
        )
    finally:
        await old.close()
    monkeypatch.undo()
    admin = await asyncpg.connect(postgres_dsn)
    try:
        tomorrow = pg_schema.day_start(time.time()) + pg_schema.DAY
        deliveries_of_tomorrow = pg_schema.partition_ddl("deliveries", "dl", tomorrow)[0]
        assert {r["on_table"] for r in await admin.fetch(_ATTEMPT_KEYS)} >= {"attempts"}
        with pytest.raises(asyncpg.DependentObjectsStillExistError):
            await admin.execute(f"DROP TABLE {deliveries_of_tomorrow}")

        db = PgConnections(PostgresSettings(dsn=postgres_dsn))
        await db.open(maintain=False)
        await db.close()

        assert db.migrations_applied == pg_schema.LATEST - 2
        assert await admin.fetch(_ATTEMPT_KEYS) == []
        # What was stored stays; a deliveries partition can now be dropped on its own.
        assert await admin.fetchval("SELECT count(*) FROM attempts WHERE delivery_id = $1", d.id)
        await admin.execute(f"DROP TABLE {deliveries_of_tomorrow}")
    finally:
        await admin.close()


async def test_partitions_from_yesterday_to_days_ahead_exist(postgres_dsn: str) -> None:
    db = PgConnections(PostgresSettings(dsn=postgres_dsn))
    await db.open()
    try:
        today = pg_schema.day_start(time.time())
        wanted = {
            pg_schema.partition_ddl(table, prefix, today + n * pg_schema.DAY)[0]
            for table, prefix in pg_schema.PARTITIONED
            for n in range(-1, DAYS_AHEAD + 1)
        }
        rows = await db.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        )
        assert wanted <= {r["relname"] for r in rows}
        assert await db.ensure_partitions(time.time()) == []  # a second run makes nothing
    finally:
        await db.close()


async def test_commits_are_durable_whatever_the_database_default(postgres_dsn: str) -> None:
    admin = await asyncpg.connect(postgres_dsn)
    try:
        name = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await admin.close()
    db = PgConnections(PostgresSettings(dsn=postgres_dsn))
    await db.open()
    try:
        rows = await db.fetch("SHOW synchronous_commit")
        assert rows[0]["synchronous_commit"] == "on"
    finally:
        await db.close()
