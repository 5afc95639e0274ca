"""The store the settings name: the embedded SQLite one, or the PostgreSQL one."""

from __future__ import annotations

from convoyd.settings import Settings
from convoyd.store.base import Store


def make_store(settings: Settings) -> Store:
    """A Store for ``settings.store``, not yet opened."""
    if settings.store == "postgres":
        # Imported here so that the embedded default never loads the PostgreSQL driver.
        from convoyd.store.pg import PostgresStore

        return PostgresStore(settings.postgres)
    from convoyd.store.sqlite import SqliteStore

    return SqliteStore(settings.data_dir)
