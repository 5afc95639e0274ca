"""Portal links and sessions in PostgreSQL: the PgPortalTables object.

Rows are the SQLite store's (portal_sql.py decodes both). A link's read-modify-write (modify,
open) locks the link row (SELECT ... FOR UPDATE) for its transaction: concurrent opens of one
ONE_TIME link queue on that lock, and each later one reads the used_at the first committed.
"""

from __future__ import annotations

import json

import asyncpg

from convoyd.core.model import PortalLink, PortalSession
from convoyd.errors import NotFoundError
from convoyd.store.base import PortalLinkEdit, PortalOpen
from convoyd.store.codec import opt_to_us, to_us
from convoyd.store.pg_connections import PgConnections
from convoyd.store.portal_sql import (
    LINK_COLUMNS,
    LINK_NAMES,
    LINK_SELECT,
    SESSION_COLUMNS,
    SESSION_KEEP_AFTER_EXPIRY,
    SESSION_NAMES,
    link_from_row,
    session_from_row,
)
from convoyd.store.where import Where

_INSERT_LINK = (
    f"INSERT INTO portal_links ({LINK_COLUMNS}, token_hash)"  # noqa: S608 - constant columns
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(LINK_NAMES) + 2))})"
)
_INSERT_SESSION = (
    f"INSERT INTO portal_sessions ({SESSION_COLUMNS}, token_hash)"  # noqa: S608 - constant columns
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(SESSION_NAMES) + 2))})"
)
_LOCK_BY_ID = f"{LINK_SELECT} WHERE id = $1 FOR UPDATE"
_LOCK_BY_TOKEN = f"{LINK_SELECT} WHERE token_hash = $1 FOR UPDATE"
# A session and its link in one statement (one snapshot); the session's columns are renamed,
# their names clashing with the link's.
_SESSION_ALIASES = {c: f"session_{c}" for c in SESSION_NAMES}
_SESSION_WITH_LINK = (
    "SELECT "  # noqa: S608 - constant columns
    + ", ".join(f"l.{c}" for c in LINK_NAMES)
    + ", "
    + ", ".join(f"s.{c} AS {a}" for c, a in _SESSION_ALIASES.items())
    + " FROM portal_sessions s JOIN portal_links l ON l.id = s.link_id WHERE s.token_hash = $1"
)


async def _write_link(conn: asyncpg.Connection, link: PortalLink) -> None:
    """Only what may change after creation: revocation and first use."""
    await conn.execute(
        "UPDATE portal_links SET revoked_at = $1, used_at = $2 WHERE id = $3",
        opt_to_us(link.revoked_at),
        opt_to_us(link.used_at),
        link.id,
    )
    if link.revoked_at is not None:
        await conn.execute(
            "UPDATE portal_sessions SET revoked_at = $1 WHERE link_id = $2 AND revoked_at IS NULL",
            to_us(link.revoked_at),
            link.id,
        )


class PgPortalTables:
    """The portal_links and portal_sessions tables."""

    def __init__(self, db: PgConnections) -> None:
        self._db = db

    async def insert_portal_link(self, link: PortalLink, token_hash: bytes) -> None:
        # In the order of LINK_NAMES, then the token's hash.
        await self._db.execute(
            _INSERT_LINK,
            link.id,
            link.name,
            link.owner_id,
            json.dumps(list(link.endpoint_ids)),
            int(link.all_owners),
            int(link.can_manage_endpoints),
            link.kind.value,
            to_us(link.created_at),
            to_us(link.expires_at),
            opt_to_us(link.revoked_at),
            opt_to_us(link.used_at),
            token_hash,
        )

    async def get_portal_link(self, link_id: str) -> PortalLink:
        rows = await self._db.fetch(f"{LINK_SELECT} WHERE id = $1", link_id)
        if not rows:
            raise NotFoundError(f"portal link {link_id} not found")
        return link_from_row(rows[0])

    async def list_portal_links(
        self, *, owner_id: str, live_at: float | None, before_id: str, limit: int
    ) -> list[PortalLink]:
        where = Where()
        if owner_id:
            where.add("owner_id = ?", owner_id)
        if live_at is not None:
            where.add("revoked_at IS NULL AND expires_at > ?", to_us(live_at))
        if before_id:
            where.add("id < ?", before_id)
        rows = await self._db.fetch(
            f"{LINK_SELECT} {where.numbered(1)} ORDER BY id DESC LIMIT ${len(where.params) + 1}",
            *where.params,
            limit,
        )
        return [link_from_row(r) for r in rows]

    async def modify_portal_link(self, link_id: str, change: PortalLinkEdit) -> PortalLink:
        async def job(conn: asyncpg.Connection) -> PortalLink:
            row = await conn.fetchrow(_LOCK_BY_ID, link_id)
            if row is None:
                raise NotFoundError(f"portal link {link_id} not found")
            updated = change(link_from_row(row))
            await _write_link(conn, updated)
            return updated

        return await self._db.transaction(job)

    async def open_portal_session(
        self, token_hash: bytes, session_hash: bytes, open_: PortalOpen
    ) -> tuple[PortalLink, PortalSession]:
        async def job(conn: asyncpg.Connection) -> tuple[PortalLink, PortalSession]:
            row = await conn.fetchrow(_LOCK_BY_TOKEN, token_hash)
            if row is None:
                raise NotFoundError("portal link not found")
            link, session = open_(link_from_row(row))
            await _write_link(conn, link)
            await conn.execute(
                _INSERT_SESSION,
                session.id,
                session.link_id,
                to_us(session.created_at),
                to_us(session.expires_at),
                opt_to_us(session.revoked_at),
                session_hash,
            )
            await conn.execute(
                "DELETE FROM portal_sessions WHERE expires_at < $1",
                to_us(session.created_at - SESSION_KEEP_AFTER_EXPIRY),
            )
            return link, session

        return await self._db.transaction(job)

    async def get_portal_session(self, session_hash: bytes) -> tuple[PortalSession, PortalLink]:
        rows = await self._db.fetch(_SESSION_WITH_LINK, session_hash)
        if not rows:
            raise NotFoundError("portal session not found")
        row = rows[0]
        session = session_from_row({c: row[a] for c, a in _SESSION_ALIASES.items()})
        return session, link_from_row(row)

    async def end_portal_session(self, session_hash: bytes, *, now: float) -> None:
        await self._db.execute(
            "UPDATE portal_sessions SET revoked_at = $1 WHERE token_hash = $2"
            " AND revoked_at IS NULL",
            to_us(now),
            session_hash,
        )
