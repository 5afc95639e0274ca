"""Numbered schema migrations, applied in order at start and by ``convoyd migrate``.

Migration N takes the database from ``PRAGMA user_version`` N-1 to N. Never edit a shipped
migration: add the next one. Times are integer microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: endpoints, their signing secrets, control-plane tokens.
    (
        """
        CREATE TABLE endpoints (
            id                TEXT PRIMARY KEY,
            owner_id          TEXT NOT NULL,
            name              TEXT NOT NULL,
            url               TEXT NOT NULL,
            status            TEXT NOT NULL,
            status_reason     TEXT NOT NULL,
            status_changed_at INTEGER NOT NULL,
            spec              TEXT NOT NULL,  -- JSON: the rest of EndpointSpec
            created_at        INTEGER NOT NULL,
            updated_at        INTEGER NOT NULL
        ) STRICT
        """,
        "CREATE INDEX endpoints_owner ON endpoints (owner_id, id)",
        "CREATE INDEX endpoints_status ON endpoints (status, id)",
        """
        CREATE TABLE endpoint_secrets (
            id          TEXT PRIMARY KEY,
            endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
            value       TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            expires_at  INTEGER
        ) STRICT
        """,
        "CREATE INDEX endpoint_secrets_endpoint ON endpoint_secrets (endpoint_id)",
        """
        CREATE TABLE api_tokens (
            id         TEXT PRIMARY KEY,
            name       TEXT NOT NULL,
            token_hash BLOB NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER
        ) STRICT
        """,
    ),
)

LATEST = len(MIGRATIONS)
