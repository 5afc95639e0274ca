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
    # 2: events, their deliveries, and every attempt.
    (
        """
        CREATE TABLE events (
            id              TEXT PRIMARY KEY,
            event_type      TEXT NOT NULL,
            owner_id        TEXT NOT NULL,
            endpoint_ids    TEXT NOT NULL,  -- JSON list, the targets as given
            data            BLOB NOT NULL,
            headers         TEXT NOT NULL,  -- JSON object
            idempotency_key TEXT,
            payload_hash    BLOB NOT NULL,  -- SHA-256 of type, targets and data: replay check
            delivery_count  INTEGER NOT NULL,
            created_at      INTEGER NOT NULL
        ) STRICT
        """,
        "CREATE INDEX events_idempotency ON events (idempotency_key, created_at)"
        " WHERE idempotency_key IS NOT NULL",
        "CREATE INDEX events_type ON events (event_type, id)",
        "CREATE INDEX events_owner ON events (owner_id, id)",
        """
        CREATE TABLE deliveries (
            id               TEXT PRIMARY KEY,
            event_id         TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
            endpoint_id      TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
            owner_id         TEXT NOT NULL,
            event_type       TEXT NOT NULL,
            status           TEXT NOT NULL,
            status_reason    TEXT NOT NULL,
            attempt_count    INTEGER NOT NULL,
            attempt_limit    INTEGER,
            next_attempt_at  INTEGER,
            last_attempt_at  INTEGER,
            last_http_status INTEGER NOT NULL,
            created_at       INTEGER NOT NULL,
            updated_at       INTEGER NOT NULL
        ) STRICT
        """,
        "CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id)",
        "CREATE INDEX deliveries_event ON deliveries (event_id)",
        "CREATE INDEX deliveries_owner ON deliveries (owner_id, id)",
        # The engine's work list: pending deliveries by when they are due.
        "CREATE INDEX deliveries_due ON deliveries (next_attempt_at)"
        " WHERE status IN ('scheduled', 'processing', 'retry')",
        "CREATE INDEX deliveries_status ON deliveries (status, id)",
        """
        CREATE TABLE attempts (
            id                      TEXT PRIMARY KEY,
            delivery_id             TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
            number                  INTEGER NOT NULL,
            result                  TEXT NOT NULL,
            started_at              INTEGER NOT NULL,
            duration_us             INTEGER NOT NULL,
            request_url             TEXT NOT NULL,
            request_headers         TEXT NOT NULL,  -- JSON [[name, value], ...], redacted
            response_status         INTEGER NOT NULL,
            response_headers        TEXT NOT NULL,
            response_body           BLOB NOT NULL,
            response_body_truncated INTEGER NOT NULL,
            error                   TEXT NOT NULL,
            remote_address          TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX attempts_delivery ON attempts (delivery_id, number)",
    ),
    # 3: portal links and the browser sessions opened with them (tokens stored hashed only).
    (
        """
        CREATE TABLE portal_links (
            id                   TEXT PRIMARY KEY,
            name                 TEXT NOT NULL,
            owner_id             TEXT NOT NULL,  -- '' unless scoped to one owner
            endpoint_ids         TEXT NOT NULL,  -- JSON list; empty unless scoped to endpoints
            all_owners           INTEGER NOT NULL,
            can_manage_endpoints INTEGER NOT NULL,
            kind                 TEXT NOT NULL,
            token_hash           BLOB NOT NULL UNIQUE,  -- SHA-256 of the link's token
            created_at           INTEGER NOT NULL,
            expires_at           INTEGER NOT NULL,
            revoked_at           INTEGER,
            used_at              INTEGER
        ) STRICT
        """,
        "CREATE INDEX portal_links_owner ON portal_links (owner_id, id)",
        """
        CREATE TABLE portal_sessions (
            id         TEXT PRIMARY KEY,
            link_id    TEXT NOT NULL REFERENCES portal_links (id) ON DELETE CASCADE,
            token_hash BLOB NOT NULL UNIQUE,  -- SHA-256 of the session cookie's value
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            revoked_at INTEGER
        ) STRICT
        """,
        "CREATE INDEX portal_sessions_link ON portal_sessions (link_id)",
        "CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at)",
    ),
    # 4: a FIFO endpoint's head (its pending delivery with the smallest id) found from its
    # pending deliveries alone, not by walking past every finished one.
    (
        "CREATE INDEX deliveries_pending ON deliveries (endpoint_id, id)"
        " WHERE status IN ('processing', 'retry', 'scheduled')",
    ),
    # 5: an event's place in a trace (W3C trace context, JSON; docs/tracing.md), NULL without.
    ("ALTER TABLE events ADD COLUMN trace_context TEXT",),
    # 6: delivery health: an endpoint's attempts per UTC hour that started in it, ok and
    # failed, and their response times in the fixed histogram of core/health.py (a column
    # per bucket: lat_00 counts those under 1 ms, ..., lat_24 those of 60 s or more). Added
    # to as attempts are recorded (store/health_sql.py); pruned with retention.
    (
        """
        CREATE TABLE endpoint_health (
            endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
            hour_start  INTEGER NOT NULL,  -- the hour's start, microseconds since the epoch
            ok          INTEGER NOT NULL,
            failed      INTEGER NOT NULL,
            lat_00 INTEGER NOT NULL, lat_01 INTEGER NOT NULL, lat_02 INTEGER NOT NULL,
            lat_03 INTEGER NOT NULL, lat_04 INTEGER NOT NULL, lat_05 INTEGER NOT NULL,
            lat_06 INTEGER NOT NULL, lat_07 INTEGER NOT NULL, lat_08 INTEGER NOT NULL,
            lat_09 INTEGER NOT NULL, lat_10 INTEGER NOT NULL, lat_11 INTEGER NOT NULL,
            lat_12 INTEGER NOT NULL, lat_13 INTEGER NOT NULL, lat_14 INTEGER NOT NULL,
            lat_15 INTEGER NOT NULL, lat_16 INTEGER NOT NULL, lat_17 INTEGER NOT NULL,
            lat_18 INTEGER NOT NULL, lat_19 INTEGER NOT NULL, lat_20 INTEGER NOT NULL,
            lat_21 INTEGER NOT NULL, lat_22 INTEGER NOT NULL, lat_23 INTEGER NOT NULL,
            lat_24 INTEGER NOT NULL,
            PRIMARY KEY (endpoint_id, hour_start)
        ) STRICT, WITHOUT ROWID
        """,
        "CREATE INDEX endpoint_health_hour ON endpoint_health (hour_start)",
    ),
)

LATEST = len(MIGRATIONS)
