"""SQLite rows and jobs of portal links and sessions (called by SqliteStore's thin methods).

The ``*_job`` functions run on the writer thread inside a group transaction (see writer.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from convoyd.core.model import PortalLink, PortalLinkKind, PortalSession
from convoyd.errors import NotFoundError
from convoyd.store.base import PortalLinkChange, PortalOpen
from convoyd.store.codec import from_us, opt_from_us, opt_to_us, to_us
from convoyd.store.records import Filters

LINK_COLUMNS = (
    "id, name, owner_id, endpoint_ids, all_owners, can_manage_endpoints, kind, created_at,"
    " expires_at, revoked_at, used_at"
)
SESSION_COLUMNS = "id, link_id, created_at, expires_at, revoked_at"
# Expired sessions are deleted a while after they end, when new ones are opened.
SESSION_KEEP_AFTER_EXPIRY = 86400.0


def link_from_row(row: Sequence[Any]) -> PortalLink:
    return PortalLink(
        id=row[0],
        name=row[1],
        owner_id=row[2],
        endpoint_ids=tuple(json.loads(row[3])),
        all_owners=bool(row[4]),
        can_manage_endpoints=bool(row[5]),
        kind=PortalLinkKind(row[6]),
        created_at=from_us(row[7]),
        expires_at=from_us(row[8]),
        revoked_at=opt_from_us(row[9]),
        used_at=opt_from_us(row[10]),
    )


def session_from_row(row: Sequence[Any]) -> PortalSession:
    return PortalSession(
        id=row[0],
        link_id=row[1],
        created_at=from_us(row[2]),
        expires_at=from_us(row[3]),
        revoked_at=opt_from_us(row[4]),
    )


def insert_link_job(link: PortalLink, token_hash: bytes) -> Any:
    row = (
        link.id,
        link.name,
        link.owner_id,
        json.dumps(list(link.endpoint_ids)),
        int(link.all_owners),
        int(link.can_manage_endpoints),
        link.kind.value,
        token_hash,
        to_us(link.created_at),
        to_us(link.expires_at),
        opt_to_us(link.revoked_at),
        opt_to_us(link.used_at),
    )

    def job(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO portal_links (id, name, owner_id, endpoint_ids, all_owners,"
            " can_manage_endpoints, kind, token_hash, created_at, expires_at, revoked_at, used_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            row,
        )

    return job


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
        f"SELECT {LINK_COLUMNS} FROM portal_links WHERE {where} = ?",  # noqa: S608 - constant clauses
        (value,),
    ).fetchone()
    return None if row is None else link_from_row(row)


def modify_link_job(link_id: str, change: PortalLinkChange) -> Any:
    def job(conn: sqlite3.Connection) -> PortalLink:
        current = _read_link(conn, "id", link_id)
        if current is None:
            raise NotFoundError(f"portal link {link_id} not found")
        updated = change(current)
        _write_link(conn, updated)
        return updated

    return job


def open_session_job(token_hash: bytes, session_hash: bytes, open_: PortalOpen) -> Any:
    def job(conn: sqlite3.Connection) -> tuple[PortalLink, PortalSession]:
        current = _read_link(conn, "token_hash", token_hash)
        if current is None:
            raise NotFoundError("portal link not found")
        link, session = open_(current)
        _write_link(conn, link)
        conn.execute(
            f"INSERT INTO portal_sessions ({SESSION_COLUMNS}, token_hash)"  # noqa: S608 - constant columns
            " VALUES (?,?,?,?,?,?)",
            (
                session.id,
                session.link_id,
                to_us(session.created_at),
                to_us(session.expires_at),
                opt_to_us(session.revoked_at),
                session_hash,
            ),
        )
        conn.execute(
            "DELETE FROM portal_sessions WHERE expires_at < ?",
            (to_us(session.created_at - SESSION_KEEP_AFTER_EXPIRY),),
        )
        return link, session

    return job


def end_session_job(session_hash: bytes, now: float) -> Any:
    def job(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE portal_sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
            (to_us(now), session_hash),
        )

    return job


def link_filters(*, owner_id: str, live_at: float | None, before_id: str) -> Filters:
    clauses: list[str] = []
    params: list[Any] = []
    if owner_id:
        clauses.append("owner_id = ?")
        params.append(owner_id)
    if live_at is not None:
        clauses.append("revoked_at IS NULL AND expires_at > ?")
        params.append(to_us(live_at))
    if before_id:
        clauses.append("id < ?")
        params.append(before_id)
    return Filters(tuple(clauses), tuple(params))


LINK_SELECT = f"SELECT {LINK_COLUMNS} FROM portal_links"  # noqa: S608 - constant columns
SESSION_SELECT = (
    "SELECT s.id, s.link_id, s.created_at, s.expires_at, s.revoked_at,"
    " l.id, l.name, l.owner_id, l.endpoint_ids, l.all_owners, l.can_manage_endpoints, l.kind,"
    " l.created_at, l.expires_at, l.revoked_at, l.used_at"
    " FROM portal_sessions s JOIN portal_links l ON l.id = s.link_id WHERE s.token_hash = ?"
)
SESSION_WIDTH = len(SESSION_COLUMNS.split(","))
