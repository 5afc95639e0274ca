"""Endpoint rows and their secrets, on the writer's connection or in one read of the reader's."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

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


def read_endpoints(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Endpoint]:
    """The endpoints ``sql`` selects (codec.ENDPOINT_COLUMNS), with their secrets, on ``conn``:
    in one transaction, so each endpoint comes with the secrets it had then."""
    rows = conn.execute(sql, params).fetchall()
    if not rows:
        return []
    ids = [r[0] for r in rows]
    by_endpoint: dict[str, list[Secret]] = defaultdict(list)
    for start in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        secret_rows = conn.execute(
            f"SELECT {codec.SECRET_COLUMNS} FROM endpoint_secrets"  # noqa: S608 - placeholders only
            f" WHERE endpoint_id IN ({marks}) ORDER BY created_at DESC, id DESC",
            chunk,
        ).fetchall()
        for r in secret_rows:
            by_endpoint[r[1]].append(codec.secret_from_row(r))
    return [codec.endpoint_from_row(r, tuple(by_endpoint[r[0]])) for r in rows]


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
