"""The PostgreSQL schema: numbered migrations, and the daily partitions made ahead of time.

Migration N takes the database from version N-1 to N (table ``convoyd_migrations``); they run
under an advisory lock, so several nodes starting at once apply each exactly once. Never edit
a shipped migration: add the next one.

Columns mirror the SQLite schema (store/migrations.py) type for type, so that one codec
(store/codec.py) reads and writes both: times are BIGINT microseconds since the Unix epoch,
lists and maps JSON text, flags INTEGER 0/1. Ids are ``COLLATE "C"``: they are ULIDs that sort
bytewise in creation order, which paging (``id < $before``) and the partitions rely on.

Events, deliveries and attempts are partitioned by range of id from the first migration, a
partition a day (architecture.md §5): an id is its creation time, so a range of ids is a day,
the primary key is the partition key (no global index needed), and retention drops whole
partitions instead of deleting rows. Attempts are partitioned by their delivery's id, so a
day's events, deliveries and attempts leave together. A DEFAULT partition of each takes any
row whose id lies outside the partitions made (a clock far off); it is normally empty.

Attempts are tied to their delivery by code, not by a foreign key (migration 3 drops the one
migration 1 made): a partition of a referenced table cannot be dropped, only detached, and the
detach checks that no attempt refers to the day's deliveries, a join over the whole day made
while the parents are locked, far too long for a real day. So whatever deletes deliveries
deletes their attempts in the same transaction (pg_endpoints.delete_endpoint, pg_retention's
row deletes; a day's drop takes its attempts partition), and record() writes an attempt only
for a delivery whose row it updates, and so locks, in the same statement (pg_events.py).
"""

from __future__ import annotations

import datetime

from convoyd.core.ids import id_floor

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: endpoints and their secrets, control-plane tokens, events, deliveries, attempts,
    # idempotency keys, portal links and sessions.
    (
        """
        CREATE TABLE endpoints (
            id                text COLLATE "C" PRIMARY KEY,
            owner_id          text COLLATE "C" NOT NULL,
            name              text NOT NULL,
            url               text NOT NULL,
            status            text NOT NULL,
            status_reason     text NOT NULL,
            status_changed_at bigint NOT NULL,
            spec              text NOT NULL,  -- JSON: the rest of EndpointSpec
            created_at        bigint NOT NULL,
            updated_at        bigint NOT NULL
        )
        """,
        "CREATE INDEX endpoints_owner ON endpoints (owner_id, id)",
        "CREATE INDEX endpoints_status ON endpoints (status, id)",
        """
        CREATE TABLE endpoint_secrets (
            id          text COLLATE "C" PRIMARY KEY,
            endpoint_id text COLLATE "C" NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
            value       text NOT NULL,
            created_at  bigint NOT NULL,
            expires_at  bigint
        )
        """,
        "CREATE INDEX endpoint_secrets_endpoint ON endpoint_secrets (endpoint_id)",
        """
        CREATE TABLE api_tokens (
            id         text COLLATE "C" PRIMARY KEY,
            name       text NOT NULL,
            token_hash bytea NOT NULL UNIQUE,
            created_at bigint NOT NULL,
            revoked_at bigint
        )
        """,
        """
        CREATE TABLE events (
            id              text COLLATE "C" NOT NULL PRIMARY KEY,
            event_type      text NOT NULL,
            owner_id        text COLLATE "C" NOT NULL,
            endpoint_ids    text NOT NULL,  -- JSON list, the targets as given
            data            bytea NOT NULL,
            headers         text NOT NULL,  -- JSON object
            idempotency_key text,
            payload_hash    bytea NOT NULL,  -- SHA-256 of type, targets and data: replay check
            delivery_count  integer NOT NULL,
            created_at      bigint NOT NULL
        ) PARTITION BY RANGE (id)
        """,
        "CREATE INDEX events_type ON events (event_type, id)",
        "CREATE INDEX events_owner ON events (owner_id, id)",
        "CREATE TABLE events_default PARTITION OF events DEFAULT",
        # One row per idempotency key in use: the unique key that makes two nodes (or two
        # connections) unable to accept the same key twice within the window. A row older
        # than the window is taken over by the next event with its key.
        """
        CREATE TABLE idempotency_keys (
            key        text COLLATE "C" PRIMARY KEY,
            event_id   text COLLATE "C" NOT NULL,
            created_at bigint NOT NULL
        )
        """,
        "CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)",
        # No foreign key to events: deliveries are written with their event in one
        # transaction, and leave with it when retention drops their day.
        """
        CREATE TABLE deliveries (
            id               text COLLATE "C" NOT NULL PRIMARY KEY,
            event_id         text COLLATE "C" NOT NULL,
            endpoint_id      text COLLATE "C" NOT NULL
                             REFERENCES endpoints (id) ON DELETE CASCADE,
            owner_id         text COLLATE "C" NOT NULL,
            event_type       text NOT NULL,
            status           text NOT NULL,
            status_reason    text NOT NULL,
            attempt_count    integer NOT NULL,
            attempt_limit    integer,
            next_attempt_at  bigint,
            last_attempt_at  bigint,
            last_http_status integer NOT NULL,
            created_at       bigint NOT NULL,
            updated_at       bigint NOT NULL
        ) PARTITION BY RANGE (id)
        """,
        "CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id)",
        "CREATE INDEX deliveries_event ON deliveries (event_id)",
        "CREATE INDEX deliveries_owner ON deliveries (owner_id, id)",
        # The engine's work list: pending deliveries by when they are due.
        "CREATE INDEX deliveries_due ON deliveries (next_attempt_at)"
        " WHERE status IN ('processing', 'retry', 'scheduled')",
        "CREATE INDEX deliveries_status ON deliveries (status, id)",
        "CREATE TABLE deliveries_default PARTITION OF deliveries DEFAULT",
        # (Migration 3 drops the foreign key to deliveries: see the module docstring.)
        """
        CREATE TABLE attempts (
            id                      text COLLATE "C" NOT NULL,
            delivery_id             text COLLATE "C" NOT NULL
                                    REFERENCES deliveries (id) ON DELETE CASCADE,
            number                  integer NOT NULL,
            result                  text NOT NULL,
            started_at              bigint NOT NULL,
            duration_us             bigint NOT NULL,
            request_url             text NOT NULL,
            request_headers         text NOT NULL,  -- JSON [[name, value], ...], redacted
            response_status         integer NOT NULL,
            response_headers        text NOT NULL,
            response_body           bytea NOT NULL,
            response_body_truncated integer NOT NULL,
            error                   text NOT NULL,
            remote_address          text NOT NULL,
            PRIMARY KEY (delivery_id, number)
        ) PARTITION BY RANGE (delivery_id)
        """,
        "CREATE TABLE attempts_default PARTITION OF attempts DEFAULT",
        """
        CREATE TABLE portal_links (
            id                   text COLLATE "C" PRIMARY KEY,
            name                 text NOT NULL,
            owner_id             text COLLATE "C" NOT NULL,  -- '' unless scoped to one owner
            endpoint_ids         text NOT NULL,  -- JSON list; empty unless scoped to endpoints
            all_owners           integer NOT NULL,
            can_manage_endpoints integer NOT NULL,
            kind                 text NOT NULL,
            token_hash           bytea NOT NULL UNIQUE,  -- SHA-256 of the link's token
            created_at           bigint NOT NULL,
            expires_at           bigint NOT NULL,
            revoked_at           bigint,
            used_at              bigint
        )
        """,
        "CREATE INDEX portal_links_owner ON portal_links (owner_id, id)",
        """
        CREATE TABLE portal_sessions (
            id         text COLLATE "C" PRIMARY KEY,
            link_id    text COLLATE "C" NOT NULL REFERENCES portal_links (id) ON DELETE CASCADE,
            token_hash bytea NOT NULL UNIQUE,  -- SHA-256 of the session cookie's value
            created_at bigint NOT NULL,
            expires_at bigint NOT NULL,
            revoked_at bigint
        )
        """,
        "CREATE INDEX portal_sessions_link ON portal_sessions (link_id)",
        "CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at)",
    ),
    # 2: the cluster: nodes, the shards they lease, breaker states that move with an endpoint.
    (
        # Recorded once, when the database is first set up: 'shards'.
        "CREATE TABLE cluster_settings (key text PRIMARY KEY, value text NOT NULL)",
        """
        CREATE TABLE cluster_nodes (
            node_id      text COLLATE "C" PRIMARY KEY,
            grpc_address text NOT NULL,
            http_address text NOT NULL,
            version      text NOT NULL,
            started_at   timestamptz NOT NULL,
            heartbeat_at timestamptz NOT NULL,
            watching     boolean NOT NULL DEFAULT false  -- has WatchDeliveries streams open
        )
        """,
        # Times by the database's clock: every node judges expiry by the same one.
        """
        CREATE TABLE cluster_shards (
            shard       integer PRIMARY KEY,
            node_id     text COLLATE "C",
            epoch       bigint NOT NULL DEFAULT 0,
            lease_until timestamptz NOT NULL DEFAULT '-infinity'
        )
        """,
        "CREATE INDEX cluster_shards_node ON cluster_shards (node_id)",
        # The shard of an endpoint is this key modulo the number of shards; the daemon
        # computes the same (convoyd/core/shards.py), so no code path can forget to set it.
        "ALTER TABLE endpoints ADD COLUMN shard_key bigint"
        " GENERATED ALWAYS AS (('x' || substr(md5(id), 1, 15))::bit(60)::bigint) STORED",
        """
        CREATE TABLE endpoint_breakers (
            endpoint_id text COLLATE "C" PRIMARY KEY
                        REFERENCES endpoints (id) ON DELETE CASCADE,
            state       text NOT NULL,  -- JSON: convoyd.core.breaker.BreakerSnapshot
            updated_at  bigint NOT NULL
        )
        """,
    ),
    # 3: attempts lose their foreign key to deliveries, so that retention can drop a day's
    # deliveries partition instead of detaching it (module docstring). The partitions' copies
    # of the constraint go with it. An attempt that a node still running an older convoyd
    # leaves behind meanwhile (its delete_endpoint relied on the cascade) names no delivery;
    # attempts are read only through their delivery, so none shows it, and it leaves with its
    # day.
    ("ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_delivery_id_fkey",),
    # 4: a FIFO endpoint's head (its pending delivery with the smallest id) found from its
    # pending deliveries alone, not by walking past every finished one (store fifo_heads).
    (
        "CREATE INDEX deliveries_pending ON deliveries (endpoint_id, id)"
        " WHERE status IN ('processing', 'retry', 'scheduled')",
    ),
    # 5: an event's place in a trace (W3C trace context, JSON; docs/tracing.md), NULL without.
    # Added to the partitioned table, so to every partition, without rewriting a row.
    ("ALTER TABLE events ADD COLUMN trace_context text",),
    # 6: delivery health, as SQLite's migration 6 (store/pg_health.py): an endpoint's
    # attempts per UTC hour, ok and failed, and their response times in core/health.py's
    # fixed histogram, a column per bucket. Not partitioned, and no foreign key (pg_health.py
    # says why); the row of the current hour is updated by every recorded batch, so pages
    # are left half free for HOT updates.
    (
        """
        CREATE TABLE endpoint_health (
            endpoint_id text COLLATE "C" NOT NULL,
            hour_start  bigint NOT NULL,  -- the hour's start, microseconds since the epoch
            ok          bigint NOT NULL,
            failed      bigint NOT NULL,
            lat_00 bigint NOT NULL, lat_01 bigint NOT NULL, lat_02 bigint NOT NULL,
            lat_03 bigint NOT NULL, lat_04 bigint NOT NULL, lat_05 bigint NOT NULL,
            lat_06 bigint NOT NULL, lat_07 bigint NOT NULL, lat_08 bigint NOT NULL,
            lat_09 bigint NOT NULL, lat_10 bigint NOT NULL, lat_11 bigint NOT NULL,
            lat_12 bigint NOT NULL, lat_13 bigint NOT NULL, lat_14 bigint NOT NULL,
            lat_15 bigint NOT NULL, lat_16 bigint NOT NULL, lat_17 bigint NOT NULL,
            lat_18 bigint NOT NULL, lat_19 bigint NOT NULL, lat_20 bigint NOT NULL,
            lat_21 bigint NOT NULL, lat_22 bigint NOT NULL, lat_23 bigint NOT NULL,
            lat_24 bigint NOT NULL,
            PRIMARY KEY (endpoint_id, hour_start)
        ) WITH (fillfactor = 50)
        """,
        "CREATE INDEX endpoint_health_hour ON endpoint_health (hour_start)",
    ),
)

LATEST = len(MIGRATIONS)

# Each partitioned table, and the id prefix its partition key carries.
PARTITIONED: tuple[tuple[str, str], ...] = (
    ("events", "ev"),
    ("deliveries", "dl"),
    ("attempts", "dl"),  # by delivery_id: a delivery's attempts share its partition
)

DAY = 86400.0


def day_start(at: float) -> float:
    """Midnight UTC at or before ``at`` (seconds since the epoch)."""
    return (at // DAY) * DAY


def partition_ddl(table: str, prefix: str, day: float) -> tuple[str, str]:
    """The name and CREATE statement of ``table``'s partition for the UTC day starting at
    ``day``: ids from that midnight's floor up to the next one's."""
    stamp = datetime.datetime.fromtimestamp(day, datetime.UTC).strftime("%Y%m%d")
    name = f"{table}_p{stamp}"
    low, high = id_floor(prefix, day), id_floor(prefix, day + DAY)
    # Names and bounds are made here from constants and a date, never from input.
    return name, (
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table}"
        f" FOR VALUES FROM ('{low}') TO ('{high}')"
    )
