"""Fixtures of the store contract suite (test_contract_*.py): a ``store`` to write through
and ``peer``/``peers`` to read through.

On PostgreSQL a peer is another store object on the same database (another node, in effect),
so every read checks read-your-writes too; on SQLite it is the store itself, since one data
directory takes one SqliteStore.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from convoyd.settings import Settings
from convoyd.store.base import Store
from convoyd.store.factory import make_store
from tests.conftest import current_store, loopback_settings

PEERS = 3


def _settings(tmp_path: Path) -> Settings:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    return loopback_settings(data_dir)


async def _open(settings: Settings) -> Store:
    store = make_store(settings)
    await store.open()
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await _open(_settings(tmp_path))
    yield opened
    await opened.close()


async def _others(store: Store, tmp_path: Path, count: int) -> list[Store]:
    """``count`` store objects on the store's database: others on PostgreSQL, the store
    itself on SQLite (one data directory takes one SqliteStore)."""
    if current_store()[0] == "sqlite":
        return [store] * count
    return [await _open(_settings(tmp_path)) for _ in range(count)]


@pytest.fixture
async def peers(store: Store, tmp_path: Path) -> AsyncIterator[list[Store]]:
    others = await _others(store, tmp_path, PEERS)
    yield others
    for other in set(others) - {store}:
        await other.close()


@pytest.fixture
async def peer(store: Store, tmp_path: Path) -> AsyncIterator[Store]:
    (other,) = await _others(store, tmp_path, 1)
    yield other
    if other is not store:
        await other.close()
