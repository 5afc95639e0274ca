"""Endpoint rows and their secrets, read and written on the writer's connection."""

from __future__ import annotations

import sqlite3

from convoyd.core.model import Endpoint, Secret
from convoyd.errors import NotFoundError
from convoyd.store import codec


def load_secrets(conn: sqlite3.Connection, endpoint_id: str) -> tuple[Secret, ...]:
    rows = conn.execute(
        f"SELECT {codec.SECRET_COLUMNS} FROM endpoint_secrets WHERE endpoint_id = ?"  # noqa: S608 - constant column list
        " ORDER BY created_at DESC, id DESC",
        (endpoint_id,),
    ).fetchall()
    return tuple(codec.secret_from_row(r) for r in rows)


def read_endpoint(conn: sqlite3.Connection, endpoint_id: str) -> Endpoint:
    row = conn.execute(
        f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?",  # noqa: S608 - constant column list
        (endpoint_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"endpoint {endpoint_id} not found")
    return codec.endpoint_from_row(row, load_secrets(conn, endpoint_id))


def write_endpoint(conn: sqlite3.Connection, ep: Endpoint, *, insert: bool) -> None:
    row = codec.endpoint_to_row(ep)
    if insert:
        conn.execute(
            f"INSERT INTO endpoints ({codec.ENDPOINT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - constant column list
            row,
        )
    else:
        conn.execute(
            "UPDATE endpoints SET owner_id=?, name=?, url=?, status=?, status_reason=?,"
            " status_changed_at=?, spec=?, created_at=?, updated_at=? WHERE id=?",
            (*row[1:], ep.id),
        )
    # Secrets are few per endpoint (at most ~10): replacing them all is simpler than a diff.
    conn.execute("DELETE FROM endpoint_secrets WHERE endpoint_id = ?", (ep.id,))
    conn.executemany(
        f"INSERT INTO endpoint_secrets ({codec.SECRET_COLUMNS}) VALUES (?,?,?,?,?)",  # noqa: S608
        [codec.secret_to_row(ep.id, s) for s in ep.secrets],
    )
