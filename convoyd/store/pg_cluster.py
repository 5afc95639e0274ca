"""The cluster's tables in PostgreSQL: nodes, shard leases, breaker states, and the queries a
node runs for the shards it holds (architecture.md §11).

Lease times are the database's (``now()``), so every node judges expiry by one clock. A node
renews only leases that have not expired: a lease that lapsed (a node frozen past it) must be
taken again, which bumps its epoch, and every delivery write a node makes is conditional on
(shard, node, epoch) in the same statement (pg_events.record_fenced).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from convoyd.cluster.model import NodeInfo
from convoyd.core.breaker import BreakerSnapshot
from convoyd.core.model import Delivery, Endpoint
from convoyd.errors import UnavailableError
from convoyd.store import codec
from convoyd.store.filters import PENDING
from convoyd.store.pg_connections import UNREACHABLE, PgConnections, unavailable
from convoyd.store.pg_endpoints import endpoints_where

# A node row without a heartbeat this long is removed (by any node's heartbeat).
FORGET_DEAD_AFTER = 86400.0
_IN_SHARDS = "endpoint_id IN (SELECT id FROM endpoints WHERE shard_key % $1 = ANY($2::int[]))"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """What one heartbeat learnt: the leases renewed (shard → epoch), the nodes alive, how
    many shards each holds, and whether any node has watchers."""

    renewed: Mapping[int, int]
    live: Sequence[str]
    held: Mapping[str, int]
    owners: Mapping[int, str]
    """Which node holds each leased shard (where to send its work)."""
    watching: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Taken:
    shard: int
    epoch: int
    had_owner: bool
    """Whether some node held it before (its rate-limited endpoints wait one window)."""


class PgCluster:
    """The cluster tables, over the store's pool."""

    def __init__(self, db: PgConnections) -> None:
        self._db = db
        self.total_shards = 0

    async def setup(self, shards: int) -> int:
        """Records the number of shards on first use (``shards``), makes the shard rows, and
        returns the number recorded."""

        async def job(conn: asyncpg.Connection) -> int:
            await conn.execute(
                "INSERT INTO cluster_settings (key, value) VALUES ('shards', $1)"
                " ON CONFLICT (key) DO NOTHING",
                str(shards),
            )
            total = int(
                await conn.fetchval("SELECT value FROM cluster_settings WHERE key = 'shards'")
            )
            await conn.execute(
                "INSERT INTO cluster_shards (shard) SELECT generate_series(0, $1 - 1)"
                " ON CONFLICT (shard) DO NOTHING",
                total,
            )
            return total

        self.total_shards = await self._db.transaction(job)
        return self.total_shards

    async def register(
        self, node_id: str, *, grpc_address: str, http_address: str, version: str
    ) -> None:
        await self._db.execute(
            "INSERT INTO cluster_nodes (node_id, grpc_address, http_address, version,"
            " started_at, heartbeat_at) VALUES ($1, $2, $3, $4, now(), now())"
            " ON CONFLICT (node_id) DO UPDATE SET grpc_address = excluded.grpc_address,"
            " http_address = excluded.http_address, version = excluded.version,"
            " heartbeat_at = now()",
            node_id,
            grpc_address,
            http_address,
            version,
        )

    async def unregister(self, node_id: str) -> None:
        await self._db.execute("DELETE FROM cluster_nodes WHERE node_id = $1", node_id)

    async def heartbeat(self, node_id: str, *, lease: float, watching: bool) -> Heartbeat:
        """Renews this node's unexpired leases and its heartbeat, in one transaction."""

        async def job(conn: asyncpg.Connection) -> Heartbeat:
            await conn.execute(
                "UPDATE cluster_nodes SET heartbeat_at = now(), watching = $2 WHERE node_id = $1",
                node_id,
                watching,
            )
            await conn.execute(
                "DELETE FROM cluster_nodes WHERE heartbeat_at < now() - make_interval(secs => $1)",
                FORGET_DEAD_AFTER,
            )
            renewed = await conn.fetch(
                "UPDATE cluster_shards SET lease_until = now() + make_interval(secs => $2)"
                " WHERE node_id = $1 AND lease_until > now() RETURNING shard, epoch",
                node_id,
                lease,
            )
            nodes = await conn.fetch(
                "SELECT node_id, watching FROM cluster_nodes"
                " WHERE heartbeat_at > now() - make_interval(secs => $1)",
                lease,
            )
            leased = await conn.fetch(
                "SELECT shard, node_id FROM cluster_shards"
                " WHERE node_id IS NOT NULL AND lease_until > now()"
            )
            owners = {r["shard"]: r["node_id"] for r in leased}
            held: dict[str, int] = {}
            for owner in owners.values():
                held[owner] = held.get(owner, 0) + 1
            return Heartbeat(
                renewed={r["shard"]: r["epoch"] for r in renewed},
                live=[r["node_id"] for r in nodes],
                held=held,
                owners=owners,
                watching=any(r["watching"] for r in nodes),
            )

        return await self._db.transaction(job)

    async def acquire(self, node_id: str, *, lease: float, count: int) -> list[Taken]:
        """Takes up to ``count`` free or expired shards (each at a new epoch)."""
        if count <= 0:
            return []
        rows = await self._db.fetch(
            "WITH picked AS (SELECT shard, node_id AS previous FROM cluster_shards"
            " WHERE node_id IS NULL OR lease_until <= now() ORDER BY shard LIMIT $3"
            " FOR UPDATE SKIP LOCKED)"
            " UPDATE cluster_shards AS s SET node_id = $1, epoch = s.epoch + 1,"
            " lease_until = now() + make_interval(secs => $2) FROM picked"
            " WHERE s.shard = picked.shard RETURNING s.shard, s.epoch, picked.previous",
            node_id,
            lease,
            count,
        )
        return [
            Taken(shard=r["shard"], epoch=r["epoch"], had_owner=r["previous"] is not None)
            for r in rows
        ]

    async def release(self, node_id: str, shards: Iterable[int]) -> None:
        """Gives shards back at once (a hand-off or a clean stop)."""
        await self._db.execute(
            "UPDATE cluster_shards SET node_id = NULL, lease_until = '-infinity'"
            " WHERE node_id = $1 AND shard = ANY($2::int[])",
            node_id,
            list(shards),
        )

    async def nodes(self, *, lease: float) -> list[NodeInfo]:
        rows = await self._db.fetch(
            "SELECT n.node_id, n.grpc_address, n.http_address, n.version,"
            " extract(epoch FROM n.started_at)::float8 AS started_at,"
            " extract(epoch FROM n.heartbeat_at)::float8 AS heartbeat_at,"
            " n.heartbeat_at > now() - make_interval(secs => $1) AS alive,"
            " (SELECT count(*) FROM cluster_shards s WHERE s.node_id = n.node_id"
            "  AND s.lease_until > now()) AS shards"
            " FROM cluster_nodes n ORDER BY alive DESC, n.node_id",
            lease,
        )
        return [
            NodeInfo(
                node_id=r["node_id"],
                grpc_address=r["grpc_address"],
                http_address=r["http_address"],
                version=r["version"],
                started_at=r["started_at"],
                heartbeat_at=r["heartbeat_at"],
                shards=int(r["shards"]),
                alive=r["alive"],
            )
            for r in rows
        ]

    # -- what a node loads for its shards -----------------------------------------------------

    async def endpoints_in(self, shards: Sequence[int]) -> list[Endpoint]:
        """The endpoints of ``shards``, with their secrets."""
        return await endpoints_where(
            self._db, "WHERE shard_key % $1 = ANY($2::int[])", [self.total_shards, list(shards)]
        )

    async def due_in(
        self, shards: Sequence[int], *, after: float | None, until: float
    ) -> list[Delivery]:
        """Pending deliveries of ``shards``' endpoints due in (after, until]."""
        low = -(2**62) if after is None else codec.to_us(after)
        rows = await self._db.fetch(
            f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries"  # noqa: S608 - constant clauses
            f" WHERE status IN ({PENDING}) AND next_attempt_at > $3 AND next_attempt_at <= $4"
            f" AND {_IN_SHARDS} ORDER BY next_attempt_at, id",
            self.total_shards,
            list(shards),
            low,
            codec.to_us(until),
        )
        return [codec.delivery_from_row(r) for r in rows]

    async def recent_due(
        self, shards: Sequence[int], *, since_id: str, until: float
    ) -> list[Delivery]:
        """Pending deliveries of ``shards`` made since the id ``since_id`` (a range of the
        newest partition's primary key: cheap) and due by ``until``: the slow poll."""
        rows = await self._db.fetch(
            f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries"  # noqa: S608 - constant clauses
            f" WHERE id > $3 AND status IN ({PENDING}) AND next_attempt_at <= $4"
            f" AND {_IN_SHARDS} ORDER BY id",
            self.total_shards,
            list(shards),
            since_id,
            codec.to_us(until),
        )
        return [codec.delivery_from_row(r) for r in rows]

    async def deliveries(self, ids: Sequence[str]) -> list[Delivery]:
        """The deliveries with these ids that exist (a notification names them)."""
        rows = await self._db.fetch(
            f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries WHERE id = ANY($1::text[])",  # noqa: S608 - constant columns
            list(ids),
        )
        return [codec.delivery_from_row(r) for r in rows]

    async def endpoints(self, ids: Sequence[str]) -> list[Endpoint]:
        """The endpoints with these ids that exist, with their secrets."""
        return await endpoints_where(self._db, "WHERE id = ANY($1::text[])", [list(ids)])

    # -- breakers -------------------------------------------------------------------------

    async def save_breakers(self, states: Mapping[str, BreakerSnapshot], *, now: float) -> None:
        """Upserts breaker states (those of endpoints deleted meanwhile are skipped)."""
        if not states:
            return
        ids = list(states)
        await self._db.execute(
            "INSERT INTO endpoint_breakers (endpoint_id, state, updated_at)"
            " SELECT u.id, u.state, $3 FROM unnest($1::text[], $2::text[]) AS u(id, state)"
            " WHERE EXISTS (SELECT 1 FROM endpoints e WHERE e.id = u.id)"
            " ON CONFLICT (endpoint_id) DO UPDATE SET state = excluded.state,"
            " updated_at = excluded.updated_at",
            ids,
            [states[i].to_json() for i in ids],
            codec.to_us(now),
        )

    async def load_breakers(self, endpoint_ids: Sequence[str]) -> dict[str, BreakerSnapshot]:
        rows = await self._db.fetch(
            "SELECT endpoint_id, state FROM endpoint_breakers WHERE endpoint_id = ANY($1::text[])",
            list(endpoint_ids),
        )
        out = {}
        for r in rows:
            try:
                out[r["endpoint_id"]] = BreakerSnapshot.from_json(r["state"])
            except (ValueError, KeyError, TypeError, json.JSONDecodeError):
                continue  # a state this version cannot read: the endpoint starts afresh
        return out

    # -- notifications --------------------------------------------------------------------

    async def notify(self, messages: Sequence[tuple[str, str]]) -> None:
        """Sends each (channel, payload), all in one transaction: listeners get them when it
        commits, in this order."""
        if messages:
            await self._db.execute(
                "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS m(c, p)",
                [c for c, _ in messages],
                [p for _, p in messages],
            )


class Listener:
    """A connection of its own that LISTENs on some channels (a pooled one could not: a
    listener must stay on its session)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(
        cls,
        dsn: str,
        channels: Sequence[str],
        *,
        connect_timeout: float,
        on_message: Callable[[str], None],
        on_lost: Callable[[], None],
    ) -> Listener:
        """UnavailableError if the server cannot be reached."""
        try:
            conn = await asyncpg.connect(dsn, timeout=connect_timeout)
            conn.add_termination_listener(lambda _: on_lost())
            for channel in channels:
                await conn.add_listener(channel, lambda _c, _p, _ch, payload: on_message(payload))
        except (*UNREACHABLE, asyncpg.PostgresError) as exc:
            raise unavailable(exc) from None
        return cls(conn)

    async def ping(self, within: float) -> None:
        """UnavailableError unless the connection answers within ``within`` seconds."""
        if self._conn.is_closed():
            raise UnavailableError("the listening connection is closed")
        try:
            await self._conn.fetchval("SELECT 1", timeout=within)
        except (*UNREACHABLE, asyncpg.PostgresError) as exc:
            raise unavailable(exc) from None

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._conn.close(), timeout=2)
        except (TimeoutError, *UNREACHABLE, asyncpg.PostgresError):
            self._conn.terminate()
