"""The PostgreSQL store's setup on a real server: nodes starting at once migrate once, the
coming days' partitions exist, and commits are durable whatever the database's default."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from convoyd.settings import PostgresSettings
from convoyd.store import pg_schema
from convoyd.store.pg_connections import DAYS_AHEAD, PgConnections


async def test_nodes_starting_at_once_apply_each_migration_once(postgres_dsn: str) -> None:
    nodes = [PgConnections(PostgresSettings(dsn=postgres_dsn)) for _ in range(4)]
    try:
        await asyncio.gather(*(n.open() for n in nodes))
        assert sorted(n.migrations_applied for n in nodes) == [0, 0, 0, pg_schema.LATEST]
        rows = await nodes[0].fetch("SELECT version FROM convoyd_migrations ORDER BY version")
        assert [r["version"] for r in rows] == list(range(1, pg_schema.LATEST + 1))
    finally:
        await asyncio.gather(*(n.close() for n in nodes))


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
