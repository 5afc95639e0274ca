"""Portal links and sessions in SQLite: their rows and the PortalTables object."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from convoyd.core.model import PortalLink, PortalLinkKind, PortalSession
from convoyd.errors import NotFoundError
from convoyd.store.base import PortalLinkEdit, PortalOpen
from convoyd.store.codec import Row, from_us, opt_from_us, opt_to_us, to_us
from convoyd.store.connections import SqliteConnections
from convoyd.store.where import Where

LINK_NAMES = (
    "id",
    "name",
    "owner_id",
    "endpoint_ids",
    "all_owners",
    "can_manage_endpoints",
    "kind",
    "created_at",
    "expires_at",
    "revoked_at",
    "used_at",
)
LINK_COLUMNS = ", ".join(LINK_NAMES)
SESSION_NAMES = ("id", "link_id", "created_at", "expires_at", "revoked_at")
SESSION_COLUMNS = ", ".join(SESSION_NAMES)
# Expired sessions are deleted a while after they end, when new ones are opened.
SESSION_KEEP_AFTER_EXPIRY = 86400.0

LINK_SELECT = f"SELECT {LINK_COLUMNS} FROM portal_links"  # noqa: S608 - constant columns
_INSERT_LINK = (
    f"INSERT INTO portal_links ({LINK_COLUMNS}, token_hash)"  # noqa: S608 - constant columns
    f" VALUES ({', '.join(':' + c for c in LINK_NAMES)}, :token_hash)"
)
_INSERT_SESSION = (
    f"INSERT INTO portal_sessions ({SESSION_COLUMNS}, token_hash)"  # noqa: S608 - constant columns
    f" VALUES ({', '.join(':' + c for c in SESSION_NAMES)}, :token_hash)"
)


def link_from_row(row: Row) -> PortalLink:
    return PortalLink(
        id=row["id"],
        name=row["name"],
        owner_id=row["owner_id"],
        endpoint_ids=tuple(json.loads(row["endpoint_ids"])),
        all_owners=bool(row["all_owners"]),
        can_manage_endpoints=bool(row["can_manage_endpoints"]),
        kind=PortalLinkKind(row["kind"]),
        created_at=from_us(row["created_at"]),
        expires_at=from_us(row["expires_at"]),
        revoked_at=opt_from_us(row["revoked_at"]),
        used_at=opt_from_us(row["used_at"]),
    )


def session_from_row(row: Row) -> PortalSession:
    return PortalSession(
        id=row["id"],
        link_id=row["link_id"],
        created_at=from_us(row["created_at"]),
        expires_at=from_us(row["expires_at"]),
        revoked_at=opt_from_us(row["revoked_at"]),
    )


def _write_link(conn: sqlite3.Connection, link: PortalLink) -> None:
    """Only what may change after creation: revocation and first use."""
    conn.execute(
        "UPDATE portal_links SET revoked_at = ?, used_at = ? WHERE id = ?",
        (opt_to_us(link.revoked_at), opt_to_us(link.used_at), link.id),
    )
    if link.revoked_at is not None:
        conn.execute(
            "UPDATE portal_sessions SET revoked_at = ? WHERE link_id = ? AND revoked_at IS NULL",
            (to_us(link.revoked_at), link.id),
        )


def _read_link(conn: sqlite3.Connection, where: str, value: Any) -> PortalLink | None:
    row = conn.execute(
        f"{LINK_SELECT} WHERE {where} = ?",
        (value,),
    ).fetchone()
    return None if row is None else link_from_row(row)


class PortalTables:
    """The portal_links and portal_sessions tables."""

    def __init__(self, db: SqliteConnections) -> None:
        self._db = db

    async def insert_portal_link(self, link: PortalLink, token_hash: bytes) -> None:
        values = {
            "id": link.id,
            "name": link.name,
            "owner_id": link.owner_id,
            "endpoint_ids": json.dumps(list(link.endpoint_ids)),
            "all_owners": int(link.all_owners),
            "can_manage_endpoints": int(link.can_manage_endpoints),
            "kind": link.kind.value,
            "token_hash": token_hash,
            "created_at": to_us(link.created_at),
            "expires_at": to_us(link.expires_at),
            "revoked_at": opt_to_us(link.revoked_at),
            "used_at": opt_to_us(link.used_at),
        }
        await self._db.write(lambda conn: conn.execute(_INSERT_LINK, values))

    async def get_portal_link(self, link_id: str) -> PortalLink:
        rows = await self._db.fetchall(f"{LINK_SELECT} WHERE id = ?", (link_id,))
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
        rows = await self._db.fetchall(
            f"{LINK_SELECT} {where.sql()} ORDER BY id DESC LIMIT ?", (*where.params, limit)
        )
        return [link_from_row(r) for r in rows]

    async def modify_portal_link(self, link_id: str, change: PortalLinkEdit) -> PortalLink:
        def job(conn: sqlite3.Connection) -> PortalLink:
            current = _read_link(conn, "id", link_id)
            if current is None:
                raise NotFoundError(f"portal link {link_id} not found")
            updated = change(current)
            _write_link(conn, updated)
            return updated

        return await self._db.write(job)

    async def open_portal_session(
        self, token_hash: bytes, session_hash: bytes, open_: PortalOpen
    ) -> tuple[PortalLink, PortalSession]:
        def job(conn: sqlite3.Connection) -> tuple[PortalLink, PortalSession]:
            current = _read_link(conn, "token_hash", token_hash)
            if current is None:
                raise NotFoundError("portal link not found")
            link, session = open_(current)
            _write_link(conn, link)
            conn.execute(
                _INSERT_SESSION,
                {
                    "id": session.id,
                    "link_id": session.link_id,
                    "created_at": to_us(session.created_at),
                    "expires_at": to_us(session.expires_at),
                    "revoked_at": opt_to_us(session.revoked_at),
                    "token_hash": session_hash,
                },
            )
            conn.execute(
                "DELETE FROM portal_sessions WHERE expires_at < ?",
                (to_us(session.created_at - SESSION_KEEP_AFTER_EXPIRY),),
            )
            return link, session

        return await self._db.write(job)

    async def get_portal_session(self, session_hash: bytes) -> tuple[PortalSession, PortalLink]:
        def job(conn: sqlite3.Connection) -> tuple[PortalSession, PortalLink] | None:
            # Two statements in one read transaction: one snapshot, as a join would be.
            row = conn.execute(
                f"SELECT {SESSION_COLUMNS} FROM portal_sessions WHERE token_hash = ?",  # noqa: S608 - constant columns
                (session_hash,),
            ).fetchone()
            if row is None:
                return None
            link = _read_link(conn, "id", row["link_id"])
            return None if link is None else (session_from_row(row), link)

        found = await self._db.read(job)
        if found is None:
            raise NotFoundError("portal session not found")
        return found

    async def end_portal_session(self, session_hash: bytes, *, now: float) -> None:
        await self._db.write(
            lambda conn: conn.execute(
                "UPDATE portal_sessions SET revoked_at = ? WHERE token_hash = ?"
                " AND revoked_at IS NULL",
                (to_us(now), session_hash),
            )
        )
