"""Read-your-writes in the SQLite store: a read asked for after a write returned sees it.

The reader runs each read whole in a read transaction of its own; these tests hold one read
open in the reader (or keep it busy with many) while writes commit and later reads are asked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import pytest

from convoyd.core.model import Endpoint
from convoyd.errors import NotFoundError, UnavailableError
from convoyd.store.base import DeliveryQuery, EventQuery, IngestNeeds, IngestSnapshot, IngestWrite
from convoyd.store.reader import Reader
from convoyd.store.sqlite import SqliteStore
from tests.store.test_bulk import ENDPOINT, write
from tests.store.test_sqlite import endpoint

CALLERS = 8
ROUNDS = 2_000  # in total over the callers


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path)
    await s.open()
    await s.insert_endpoint(ENDPOINT)
    yield s  # type: ignore[misc]
    await s.close()


def count_events(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


async def test_a_read_asked_after_a_commit_sees_it_while_an_older_read_is_open(
    store: SqliteStore,
) -> None:
    reader = Reader(store.path)
    reader.start()
    started, go = threading.Event(), threading.Event()
    try:

        def slow(conn: sqlite3.Connection) -> int:
            before = count_events(conn)  # this read's snapshot is taken here
            started.set()
            go.wait(10)
            return before

        older = asyncio.create_task(reader.run(slow))
        assert await asyncio.to_thread(started.wait, 10)
        await store.ingest(IngestNeeds(), lambda _: [write(1)])
        later = asyncio.create_task(reader.run(count_events))
        go.set()
        assert await older == 0  # its own snapshot, taken before the commit
        assert await later == 1  # asked after the commit returned: sees it
    finally:
        go.set()
        await reader.stop()


async def test_concurrent_writers_read_their_writes_at_once(store: SqliteStore) -> None:
    misses: Counter[str] = Counter()
    done = asyncio.Event()

    async def busy_reader() -> None:
        # Like the engine beside the API: reads of many rows, all the time.
        while not done.is_set():
            await store.list_deliveries(DeliveryQuery(), before_id="", limit=100)
            await store.list_events(EventQuery(), before_id="", limit=100)

    async def ingest_one(n: int) -> None:
        one = write(n)

        def build(reader: IngestSnapshot) -> list[IngestWrite]:
            return [one]

        await store.ingest(IngestNeeds(), build)
        try:
            got = await store.get_event(one.event.id)
        except NotFoundError:
            misses["get_event NOT_FOUND"] += 1
        else:
            if got != one.event:
                misses["get_event differs"] += 1
        listed = await store.list_deliveries(
            DeliveryQuery(event_id=one.event.id), before_id="", limit=10
        )
        if [d.id for d in listed] != [one.deliveries[0].id]:
            misses[f"list_deliveries(event_id) gave {len(listed)}"] += 1
        payloads = await store.load_payloads([one.event.id])
        if one.event.id not in payloads:
            misses["load_payloads without it"] += 1

    async def endpoint_round(n: int) -> None:
        ep = dataclasses.replace(endpoint(n, owner=f"owner-{n}"), id=f"ep_{n:026d}")
        await store.insert_endpoint(ep)
        try:
            if await store.get_endpoint(ep.id) != ep:
                misses["get_endpoint differs"] += 1
        except NotFoundError:
            misses["get_endpoint NOT_FOUND"] += 1
        if [e.id for e in await store.list_endpoints(owner_id=f"owner-{n}")] != [ep.id]:
            misses["list_endpoints without it"] += 1

        def rename(e: Endpoint) -> Endpoint:
            return dataclasses.replace(e, status_reason=f"changed {n}")

        await store.modify_endpoint(ep.id, rename)
        if (await store.get_endpoint(ep.id)).status_reason != f"changed {n}":
            misses["get_endpoint without the change"] += 1

    async def caller(first: int) -> None:
        for n in range(first, ROUNDS, CALLERS):
            await ingest_one(n)
            if n % 4 == 0:
                await endpoint_round(n)

    readers = [asyncio.create_task(busy_reader()) for _ in range(2)]
    try:
        await asyncio.gather(*(caller(c) for c in range(CALLERS)))
    finally:
        done.set()
        await asyncio.gather(*readers)
    assert dict(misses) == {}


async def test_a_failing_read_ends_its_transaction(store: SqliteStore) -> None:
    reader = Reader(store.path)
    reader.start()
    try:

        def half_read(conn: sqlite3.Connection) -> None:
            cursor = conn.execute("SELECT id FROM endpoints")
            cursor.fetchone()  # a statement left open, then a failure
            raise ValueError("refused")

        with pytest.raises(ValueError, match="refused"):
            await reader.run(half_read)
        with pytest.raises(sqlite3.OperationalError):  # the reader never writes
            await reader.run(lambda conn: conn.execute("DELETE FROM endpoints"))
        await store.ingest(IngestNeeds(), lambda _: [write(1)])
        assert await reader.run(count_events) == 1
    finally:
        await reader.stop()
    with pytest.raises(UnavailableError):
        await reader.run(count_events)
