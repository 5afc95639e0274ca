"""The SQLite store for real, in a temp dir: migrations, group commit, isolation of failing jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pytest

from convoyd.core.model import Endpoint, EndpointSpec, EndpointStatus, Secret
from convoyd.errors import NotFoundError
from convoyd.store import sqlite_events
from convoyd.store.migrations import LATEST
from convoyd.store.sqlite import DB_FILE, SqliteStore, apply_migrations
from convoyd.store.writer import Writer


def endpoint(n: int, owner: str = "acme") -> Endpoint:
    return Endpoint(
        id=f"ep_{n:026d}",
        spec=EndpointSpec(url=f"https://example.com/{n}", owner_id=owner, headers={"X-N": str(n)}),
        status=EndpointStatus.ACTIVE,
        status_reason="created",
        status_changed_at=1000.0 + n,
        secrets=(Secret(id=f"sec_{n}", value="whsec_abc", created_at=1000.0, expires_at=None),),
        created_at=1000.0 + n,
        updated_at=1000.0 + n,
    )


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path)
    await s.open()
    yield s  # type: ignore[misc]
    await s.close()


def test_migrations_are_applied_once_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    assert apply_migrations(path) == LATEST
    assert apply_migrations(path) == 0
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_endpoints_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path)
    await first.open()
    await first.insert_endpoint(endpoint(1))
    await first.close()

    second = SqliteStore(tmp_path)
    await second.open()
    try:
        assert await second.get_endpoint(endpoint(1).id) == endpoint(1)
    finally:
        await second.close()


async def test_list_filters_and_pages_newest_first(store: SqliteStore) -> None:
    for n in range(6):
        await store.insert_endpoint(endpoint(n, owner="acme" if n % 2 else "globex"))
    acme = await store.list_endpoints(owner_id="acme")
    assert [e.id for e in acme] == [endpoint(n).id for n in (5, 3, 1)]
    after = await store.list_endpoints(owner_id="acme", before_id=endpoint(5).id, limit=1)
    assert [e.id for e in after] == [endpoint(3).id]
    paused = await store.list_endpoints(status=EndpointStatus.PAUSED)
    assert paused == []


async def test_modify_is_atomic_and_a_failing_change_writes_nothing(store: SqliteStore) -> None:
    await store.insert_endpoint(endpoint(1))

    def bump(ep: Endpoint) -> Endpoint:
        return dataclasses.replace(ep, status_reason=str(int(ep.status_reason or "0") + 1))

    await store.modify_endpoint(
        endpoint(1).id, lambda ep: dataclasses.replace(ep, status_reason="0")
    )
    # Many concurrent read-modify-write changes: none is lost because each runs in the writer.
    await asyncio.gather(*(store.modify_endpoint(endpoint(1).id, bump) for _ in range(50)))
    assert (await store.get_endpoint(endpoint(1).id)).status_reason == "50"

    def boom(ep: Endpoint) -> Endpoint:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await store.modify_endpoint(endpoint(1).id, boom)
    assert (await store.get_endpoint(endpoint(1).id)).status_reason == "50"


async def test_missing_endpoint_is_not_found(store: SqliteStore) -> None:
    with pytest.raises(NotFoundError):
        await store.get_endpoint("ep_missing")
    with pytest.raises(NotFoundError):
        await store.delete_endpoint("ep_missing")
    with pytest.raises(NotFoundError):
        await store.modify_endpoint("ep_missing", lambda ep: ep)


async def test_deleting_an_endpoint_deletes_its_secrets(store: SqliteStore) -> None:
    await store.insert_endpoint(endpoint(1))
    await store.delete_endpoint(endpoint(1).id)
    conn = sqlite3.connect(store.path)
    assert conn.execute("SELECT count(*) FROM endpoint_secrets").fetchone()[0] == 0
    conn.close()


async def test_writer_groups_jobs_and_isolates_a_failing_one(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")
    conn.close()
    writer = Writer(path)
    writer.start()

    def insert(v: int) -> int:
        def job(c: sqlite3.Connection) -> int:
            c.execute("INSERT INTO t (v) VALUES (?)", (v,))
            return v

        return job  # type: ignore[return-value]

    results = await asyncio.gather(
        *(writer.run(insert(v)) for v in range(200)),  # type: ignore[arg-type]
        writer.run(insert(5)),  # type: ignore[arg-type]  # duplicate key: fails alone
        return_exceptions=True,
    )
    await writer.stop()
    assert results[:200] == list(range(200))
    assert isinstance(results[200], sqlite3.IntegrityError)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 200
    conn.close()


def test_fifo_heads_are_found_from_the_pending_deliveries_index(tmp_path: Path) -> None:
    """An endpoint's finished deliveries are never walked to find its FIFO head."""
    path = tmp_path / "convoyd.db"
    apply_migrations(path)
    conn = sqlite3.connect(path)
    try:
        for sql, args in (
            (sqlite_events._FIFO_HEADS, ('["ep_1"]',)),
            (sqlite_events._FIFO_BACKLOG, ("ep_1", "ep_1")),
        ):
            plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
            assert "USING INDEX deliveries_pending (endpoint_id=?)" in plan, plan
            assert "SCAN deliveries" not in plan, plan
    finally:
        conn.close()
