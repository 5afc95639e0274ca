"""The embedded SQLite store: WAL, one writer thread with group commit, one reader thread.

``SqliteStore`` is the whole Store protocol: the connections (sqlite_base), events and
deliveries (sqlite_events), and here endpoints, control-plane tokens and portal links.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from convoyd.core.model import Endpoint, EndpointStatus, PortalLink, PortalSession
from convoyd.errors import NotFoundError
from convoyd.store import codec, portal_sql
from convoyd.store.base import ApiToken, EndpointChange, PortalLinkChange, PortalOpen
from convoyd.store.endpoint_sql import read_endpoint, read_endpoints, write_endpoint
from convoyd.store.sqlite_base import DB_FILE, SqliteBase, apply_migrations
from convoyd.store.sqlite_events import EventTables

__all__ = ["DB_FILE", "SqliteBase", "SqliteStore", "apply_migrations"]


class SqliteStore(EventTables):
    async def _endpoints(self, sql: str, params: tuple[Any, ...]) -> list[Endpoint]:
        return await self._reader.run(lambda conn: read_endpoints(conn, sql, params))

    async def insert_endpoint(self, endpoint: Endpoint) -> None:
        await self._writer.run(lambda conn: write_endpoint(conn, endpoint, insert=True))

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        found = await self._endpoints(
            f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?",  # noqa: S608 - constant column list
            (endpoint_id,),
        )
        if not found:
            raise NotFoundError(f"endpoint {endpoint_id} not found")
        return found[0]

    async def list_endpoints(
        self,
        *,
        owner_id: str = "",
        status: EndpointStatus | None = None,
        before_id: str = "",
        limit: int = 50,
    ) -> list[Endpoint]:
        where, params = [], []
        if owner_id:
            where.append("owner_id = ?")
            params.append(owner_id)
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if before_id:
            where.append("id < ?")
            params.append(before_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return await self._endpoints(
            f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints {clause} ORDER BY id DESC LIMIT ?",  # noqa: S608 - clauses are constants, values are bound
            (*params, limit),
        )

    async def modify_endpoint(self, endpoint_id: str, change: EndpointChange) -> Endpoint:
        def job(conn: sqlite3.Connection) -> Endpoint:
            updated = change(read_endpoint(conn, endpoint_id))
            write_endpoint(conn, updated, insert=False)
            return updated

        return await self._writer.run(job)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        def job(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,)).rowcount == 0:
                raise NotFoundError(f"endpoint {endpoint_id} not found")

        await self._writer.run(job)

    async def insert_api_token(self, token: ApiToken) -> None:
        row = (token.id, token.name, token.token_hash, codec.to_us(token.created_at))
        await self._writer.run(
            lambda conn: conn.execute(
                "INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES (?,?,?,?)", row
            )
        )

    async def list_api_tokens(self) -> list[ApiToken]:
        rows = await self._fetchall(
            "SELECT id, name, token_hash, created_at, revoked_at FROM api_tokens ORDER BY id"
        )
        return [
            ApiToken(
                id=r[0],
                name=r[1],
                token_hash=r[2],
                created_at=codec.from_us(r[3]),
                revoked_at=codec.opt_from_us(r[4]),
            )
            for r in rows
        ]

    # -- portal links and sessions (SQL in portal_sql.py) -------------------------------------

    async def insert_portal_link(self, link: PortalLink, token_hash: bytes) -> None:
        await self._writer.run(portal_sql.insert_link_job(link, token_hash))

    async def get_portal_link(self, link_id: str) -> PortalLink:
        rows = await self._fetchall(f"{portal_sql.LINK_SELECT} WHERE id = ?", (link_id,))
        if not rows:
            raise NotFoundError(f"portal link {link_id} not found")
        return portal_sql.link_from_row(rows[0])

    async def list_portal_links(
        self, *, owner_id: str, live_at: float | None, before_id: str, limit: int
    ) -> list[PortalLink]:
        where = portal_sql.link_filters(owner_id=owner_id, live_at=live_at, before_id=before_id)
        rows = await self._fetchall(
            f"{portal_sql.LINK_SELECT} {where.sql()} ORDER BY id DESC LIMIT ?",
            (*where.params, limit),
        )
        return [portal_sql.link_from_row(r) for r in rows]

    async def modify_portal_link(self, link_id: str, change: PortalLinkChange) -> PortalLink:
        result: PortalLink = await self._writer.run(portal_sql.modify_link_job(link_id, change))
        return result

    async def open_portal_session(
        self, token_hash: bytes, session_hash: bytes, open_: PortalOpen
    ) -> tuple[PortalLink, PortalSession]:
        job = portal_sql.open_session_job(token_hash, session_hash, open_)
        result: tuple[PortalLink, PortalSession] = await self._writer.run(job)
        return result

    async def get_portal_session(self, session_hash: bytes) -> tuple[PortalSession, PortalLink]:
        rows = await self._fetchall(portal_sql.SESSION_SELECT, (session_hash,))
        if not rows:
            raise NotFoundError("portal session not found")
        width = portal_sql.SESSION_WIDTH
        return (
            portal_sql.session_from_row(rows[0][:width]),
            portal_sql.link_from_row(rows[0][width:]),
        )

    async def end_portal_session(self, session_hash: bytes, *, now: float) -> None:
        await self._writer.run(portal_sql.end_session_job(session_hash, now))
