"""The PostgreSQL store: several convoyd nodes on one database, no single writer.

``PostgresStore`` is the Store protocol as one object: it owns the pool (pg_connections.py,
which also applies migrations and keeps the daily partitions ahead) and hands each call to
the tables it concerns: events, deliveries and attempts (pg_events.py), endpoints and tokens
(pg_endpoints.py), portal links and sessions (pg_portal.py). The schema is pg_schema.py; rows
are encoded as for SQLite (codec.py, portal_sql.py).

Concurrency: there is no writer thread, or any one writer. Every write is a transaction on
its own pooled connection, at READ COMMITTED, and what keeps concurrent writers (in this
process or on other nodes) from losing each other's changes is the database itself:

- a read-modify-write (modify_endpoint, modify_delivery, modify_portal_link,
  open_portal_session, reschedule_deliveries) reads its rows with SELECT ... FOR UPDATE, so
  the next writer of those rows waits and then reads what the first committed; rows are
  locked in one order (delivery, then endpoint) so that they do not deadlock;
- unique keys decide races between inserts: idempotency_keys makes two ingests of one key
  unable to both insert an event;
- a transaction that loses anyway (serialization failure, deadlock, unique or foreign-key
  violation) is rolled back and run again from the start; the callbacks it runs are pure,
  so running them again is harmless (store/base.py).

Read-your-writes holds because a write returns only after its commit, and every read starts
a statement (a snapshot) of its own after that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from convoyd.core.health import HealthHour
from convoyd.core.model import (
    Attempt,
    Delivery,
    Endpoint,
    EndpointStatus,
    Event,
    PortalLink,
    PortalSession,
)
from convoyd.settings import PostgresSettings
from convoyd.store import pg_health, pg_retention
from convoyd.store.base import (
    ApiToken,
    AttemptRecord,
    DeliveryEdit,
    DeliveryQuery,
    EndpointEdit,
    EventQuery,
    Guard,
    IngestBuild,
    IngestNeeds,
    IngestWrite,
    Payload,
    PortalLinkEdit,
    PortalOpen,
    Pruned,
    StatusCounts,
)
from convoyd.store.pg_cluster import PgCluster
from convoyd.store.pg_connections import PgConnections
from convoyd.store.pg_endpoints import PgEndpointTables
from convoyd.store.pg_events import Fence, PgEventTables
from convoyd.store.pg_portal import PgPortalTables


class PostgresStore:
    """The Store protocol (store/base.py) over one PostgreSQL database."""

    def __init__(self, settings: PostgresSettings) -> None:
        self._db = PgConnections(settings)
        self.where = self._db.where
        """host:port/database, for messages (no user or password)."""
        self._events = PgEventTables(self._db)
        self._endpoints = PgEndpointTables(self._db)
        self._portal = PgPortalTables(self._db)
        self.cluster = PgCluster(self._db)
        """The cluster's tables (convoyd/cluster/ uses them; a single node is a cluster of one)."""
        self.settings = settings
        # Rows retention deleted from each partition since its last VACUUM (pg_retention.py).
        self._dead_rows: dict[str, int] = {}

    async def open(self) -> None:
        """Connects, applies pending migrations and makes the coming days' partitions;
        StartupError if the server cannot be reached."""
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> bool:
        return await self._db.ping()

    # -- endpoints and control-plane tokens -------------------------------------------------

    async def insert_endpoint(self, endpoint: Endpoint) -> None:
        await self._endpoints.insert_endpoint(endpoint)

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        return await self._endpoints.get_endpoint(endpoint_id)

    async def list_endpoints(
        self,
        *,
        owner_id: str = "",
        status: EndpointStatus | None = None,
        before_id: str = "",
        limit: int = 50,
    ) -> list[Endpoint]:
        return await self._endpoints.list_endpoints(
            owner_id=owner_id, status=status, before_id=before_id, limit=limit
        )

    async def modify_endpoint(
        self, endpoint_id: str, change: EndpointEdit, *, guard: Guard | None = None
    ) -> Endpoint:
        return await self._endpoints.modify_endpoint(endpoint_id, change, guard=guard)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        await self._endpoints.delete_endpoint(endpoint_id)

    async def insert_api_token(self, token: ApiToken) -> None:
        await self._endpoints.insert_api_token(token)

    async def list_api_tokens(self) -> list[ApiToken]:
        return await self._endpoints.list_api_tokens()

    # -- events, deliveries and attempts ----------------------------------------------------

    async def ingest(self, needs: IngestNeeds, build: IngestBuild) -> list[IngestWrite]:
        return await self._events.ingest(needs, build)

    async def get_event(self, event_id: str) -> Event:
        return await self._events.get_event(event_id)

    async def list_events(self, query: EventQuery, *, before_id: str, limit: int) -> list[Event]:
        return await self._events.list_events(query, before_id=before_id, limit=limit)

    async def load_payloads(self, event_ids: Sequence[str]) -> dict[str, Payload]:
        return await self._events.load_payloads(event_ids)

    async def get_delivery(self, delivery_id: str) -> Delivery:
        return await self._events.get_delivery(delivery_id)

    async def list_deliveries(
        self, query: DeliveryQuery, *, before_id: str, limit: int
    ) -> list[Delivery]:
        return await self._events.list_deliveries(query, before_id=before_id, limit=limit)

    async def count_deliveries(self, query: DeliveryQuery) -> int:
        return await self._events.count_deliveries(query)

    async def status_counts(self) -> StatusCounts:
        return await self._events.status_counts()

    async def list_attempts(
        self, delivery_id: str, *, after_number: int, limit: int
    ) -> list[Attempt]:
        return await self._events.list_attempts(delivery_id, after_number=after_number, limit=limit)

    async def due_deliveries(self, *, after: float | None, until: float) -> list[Delivery]:
        return await self._events.due_deliveries(after=after, until=until)

    async def fifo_heads(self, endpoint_ids: Sequence[str]) -> dict[str, Delivery]:
        return await self._events.fifo_heads(endpoint_ids)

    async def fifo_backlog(self, endpoint_id: str) -> tuple[Delivery | None, int]:
        return await self._events.fifo_backlog(endpoint_id)

    async def health_hours(
        self, endpoint_ids: Sequence[str], *, since: float, until: float, latency: bool = True
    ) -> list[HealthHour]:
        return await pg_health.health_hours(
            self._db, endpoint_ids, since=since, until=until, latency=latency
        )

    async def record(
        self, records: Sequence[AttemptRecord], *, fence: Fence | None = None, node_id: str = ""
    ) -> None:
        """Store.record; with ``fence``, only the deliveries of shards ``node_id`` still holds
        at the epoch it took them with (pg_events.record)."""
        await self._events.record(records, fence=fence, node_id=node_id)

    async def modify_delivery(self, delivery_id: str, change: DeliveryEdit) -> Delivery:
        return await self._events.modify_delivery(delivery_id, change)

    async def reschedule_deliveries(
        self, query: DeliveryQuery, *, now: float, reason: str, limit: int
    ) -> list[Delivery]:
        return await self._events.reschedule_deliveries(query, now=now, reason=reason, limit=limit)

    # -- portal links and sessions ----------------------------------------------------------

    async def insert_portal_link(self, link: PortalLink, token_hash: bytes) -> None:
        await self._portal.insert_portal_link(link, token_hash)

    async def get_portal_link(self, link_id: str) -> PortalLink:
        return await self._portal.get_portal_link(link_id)

    async def list_portal_links(
        self, *, owner_id: str, live_at: float | None, before_id: str, limit: int
    ) -> list[PortalLink]:
        return await self._portal.list_portal_links(
            owner_id=owner_id, live_at=live_at, before_id=before_id, limit=limit
        )

    async def modify_portal_link(self, link_id: str, change: PortalLinkEdit) -> PortalLink:
        return await self._portal.modify_portal_link(link_id, change)

    async def open_portal_session(
        self, token_hash: bytes, session_hash: bytes, open_: PortalOpen
    ) -> tuple[PortalLink, PortalSession]:
        return await self._portal.open_portal_session(token_hash, session_hash, open_)

    async def get_portal_session(self, session_hash: bytes) -> tuple[PortalSession, PortalLink]:
        return await self._portal.get_portal_session(session_hash)

    async def end_portal_session(self, session_hash: bytes, *, now: float) -> None:
        await self._portal.end_portal_session(session_hash, now=now)

    # -- retention --------------------------------------------------------------------------

    def prune(self, *, now: float, period: float, batch: int) -> AsyncIterator[Pruned]:
        """Store.prune: whole day partitions dropped, the rest by rows (pg_retention.py)."""
        return pg_retention.prune(
            self._db, now=now, period=period, batch=batch, dead=self._dead_rows
        )

    async def size_bytes(self) -> int:
        return await pg_retention.size_bytes(self._db)
