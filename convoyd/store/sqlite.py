"""The embedded SQLite store: WAL, one writer thread with group commit, one reader thread.

``SqliteStore`` is the Store protocol as one object: it owns the connections
(connections.py) and hands each call to the tables it concerns: events, deliveries and
attempts (sqlite_events.py), endpoints and tokens (endpoint_sql.py), portal links and
sessions (portal_sql.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

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
from convoyd.store import health_sql, sqlite_retention
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
from convoyd.store.connections import DB_FILE, SqliteConnections, apply_migrations
from convoyd.store.endpoint_sql import EndpointTables
from convoyd.store.portal_sql import PortalTables
from convoyd.store.sqlite_events import EventTables

__all__ = ["DB_FILE", "SqliteStore", "apply_migrations"]


class SqliteStore:
    """The Store protocol (store/base.py) over one SQLite database in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self._db = SqliteConnections(data_dir)
        self.path = self._db.path
        self._events = EventTables(self._db)
        self._endpoints = EndpointTables(self._db)
        self._portal = PortalTables(self._db)

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> bool:
        # An embedded database has no connection to lose; its failures (a full disk) are
        # the writes' own errors.
        return True

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
        # One node has the database to itself: a guard always holds.
        return await self._endpoints.modify_endpoint(endpoint_id, change)

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
        return await health_sql.health_hours(
            self._db, endpoint_ids, since=since, until=until, latency=latency
        )

    async def record(self, records: Sequence[AttemptRecord]) -> None:
        await self._events.record(records)

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

    # -- retention ----------------------------------------------------------------------------

    def prune(self, *, now: float, period: float, batch: int) -> AsyncIterator[Pruned]:
        return sqlite_retention.prune(self._db, now=now, period=period, batch=batch)

    async def size_bytes(self) -> int:
        return sqlite_retention.size_bytes(self._db)
