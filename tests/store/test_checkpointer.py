"""The SQLite checkpointer thread (store/checkpointer.py) copies the WAL into the database
file while the writer goes on, below the writer's own checkpoint mark."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from convoyd.store.base import IngestNeeds
from convoyd.store.sqlite import SqliteStore
from convoyd.store.writer import WRITER_AUTOCHECKPOINT
from tests.receivers import eventually
from tests.store.contract_data import endpoint, event_write


async def test_the_wal_reaches_the_database_file_without_the_writer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        ep = endpoint()
        await store.insert_endpoint(ep)
        start = store.path.stat().st_size
        # About 3 MiB: far below the writer's own mark of WRITER_AUTOCHECKPOINT pages.
        for _ in range(30):
            writes = [event_write([ep]) for _ in range(25)]
            writes = [
                dataclasses.replace(w, event=dataclasses.replace(w.event, data=b"x" * 4000))
                for w in writes
            ]
            await store.ingest(IngestNeeds(), lambda _, ws=writes: ws)
        assert WRITER_AUTOCHECKPOINT * 4096 / 4 > 30 * 25 * 4000

        await eventually(lambda: store.path.stat().st_size > start + 2_000_000, timeout=10)
    finally:
        await store.close()
