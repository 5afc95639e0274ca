"""The Store protocol: everything the rest of convoyd may ask of persistence, and nothing more.

SQL lives only behind this protocol, so a PostgreSQL implementation (several convoyd
instances on one database) can be added without touching the service layer or the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from convoyd.core.health import HealthHour
from convoyd.core.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    Event,
    PortalLink,
    PortalSession,
)
from convoyd.core.tracecontext import EventTrace


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A control-plane bearer token, known only by its SHA-256 hash."""

    id: str
    name: str
    token_hash: bytes
    created_at: float
    revoked_at: float | None = None


# Edits: pure functions from a row as stored to the row to store, run inside the store's
# transaction (they may raise a ConvoydError to refuse, and may run more than once).
EndpointEdit = Callable[[Endpoint], Endpoint]
# An edit of a delivery that may also change its endpoint (the PENDING probe flow).
DeliveryEdit = Callable[[Delivery, Endpoint], tuple[Delivery, Endpoint]]
PortalLinkEdit = Callable[[PortalLink], PortalLink]


@dataclass(frozen=True, slots=True, kw_only=True)
class Guard:
    """A write a node of a cluster makes as the owner of an endpoint (its engine's verdicts):
    stored only if ``node_id`` still holds the endpoint's shard at the epoch ``fence`` names,
    checked in the same transaction. A single node always holds everything."""

    node_id: str
    fence: Callable[[str], tuple[int, int] | None]
    """endpoint id → (shard, epoch) it is held under, or None."""


# Opening a session with a link: the link as it is afterwards (used_at) and the new session.
PortalOpen = Callable[[PortalLink], tuple[PortalLink, PortalSession]]


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestNeeds:
    """What the ingest rules will read, named before the transaction starts, so that every
    store can fetch it inside that transaction (one round trip on a server, not one per event)
    and the rules themselves stay synchronous and pure."""

    endpoint_ids: frozenset[str] = frozenset()
    owner_ids: frozenset[str] = frozenset()
    idempotency_keys: frozenset[str] = frozenset()
    idempotency_since: float = 0.0
    """Only an event with one of ``idempotency_keys`` created at or after this counts."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSnapshot:
    """What a store fetched for ``IngestNeeds``, as the ingest transaction sees it: endpoints
    (without their secrets) locked against concurrent change until the transaction ends."""

    by_id: Mapping[str, Endpoint] = field(default_factory=dict)
    by_owner: Mapping[str, Sequence[Endpoint]] = field(default_factory=dict)
    """Every endpoint of each owner asked for, by id."""
    idempotent: Mapping[str, tuple[Event, bytes]] = field(default_factory=dict)
    """For each idempotency key asked for and in use: the newest event with it within the
    window, and that event's payload hash."""

    def endpoints(self, ids: Sequence[str]) -> dict[str, Endpoint]:
        """The endpoints that exist among ``ids``."""
        return {i: self.by_id[i] for i in ids if i in self.by_id}

    def owner_endpoints(self, owner_id: str) -> list[Endpoint]:
        return list(self.by_owner.get(owner_id, ()))

    def idempotent_event(self, key: str) -> tuple[Event, bytes] | None:
        return self.idempotent.get(key)


# Planning an ingest: from what was fetched to what to store. Pure: a store may run it more
# than once (after a serialization failure or a concurrent use of the same idempotency key,
# with a fresh snapshot), and only the last run's result is stored.
IngestBuild = Callable[[IngestSnapshot], "list[IngestWrite]"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestWrite:
    """One accepted event: what to insert, or (replay) the original event returned again."""

    event: Event
    payload_hash: bytes
    deliveries: Sequence[Delivery] = ()
    replay: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryQuery:
    event_id: str = ""
    endpoint_ids: Sequence[str] = ()
    owner_id: str = ""
    statuses: Sequence[DeliveryStatus] = ()
    created_after: float | None = None
    created_before: float | None = None
    event_type: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventQuery:
    event_type: str = ""
    owner_id: str = ""
    endpoint_id: str = ""
    created_after: float | None = None
    created_before: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """The outcome of one attempt: the attempt row and the delivery as it is afterwards."""

    attempt: Attempt | None
    delivery: Delivery


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Where the event's attempts join its trace (tracing on); None: nowhere.
    trace: EventTrace | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusCounts:
    """How many deliveries waiting to be attempted and endpoints there are, by status value."""

    deliveries: Mapping[str, int]
    endpoints: Mapping[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruned:
    """What one step of retention removed (docs/operations.md, "Retention")."""

    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    idempotency_keys: int = 0
    partitions: int = 0  # PostgreSQL: partitions dropped whole (their rows counted above)


class DeliveryStore(Protocol):
    """The part of the store the delivery engine and its recorder use: a single node's
    whole store, or a cluster node's view of the shards it holds (convoyd/cluster/node.py)."""

    async def due_deliveries(self, *, after: float | None, until: float) -> list[Delivery]: ...

    async def fifo_heads(self, endpoint_ids: Sequence[str]) -> dict[str, Delivery]: ...

    async def load_payloads(self, event_ids: Sequence[str]) -> dict[str, Payload]: ...

    async def record(self, records: Sequence[AttemptRecord]) -> None: ...


class Store(Protocol):
    """Read-your-writes: once a write method has returned, every read that starts after it,
    from any caller, sees that write (or a later state), never an older snapshot."""

    async def open(self) -> None:
        """Connects and applies pending migrations."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """Whether the store answers now (a server store: a trivial query within its connect
        timeout). Health checks report NOT_SERVING while it does not."""

    async def insert_endpoint(self, endpoint: Endpoint) -> None: ...

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        """Raises NotFoundError."""

    async def list_endpoints(
        self,
        *,
        owner_id: str = "",
        status: EndpointStatus | None = None,
        before_id: str = "",
        limit: int = 50,
    ) -> list[Endpoint]:
        """Newest first; ``before_id`` continues a listing after that id."""

    async def modify_endpoint(
        self, endpoint_id: str, change: EndpointEdit, *, guard: Guard | None = None
    ) -> Endpoint:
        """Reads the endpoint, applies ``change`` and writes the result in one transaction
        (with ``guard``: FailedPreconditionError, nothing written, unless the guard holds).

        ``change`` runs inside the store's write transaction, so concurrent modifications
        never interleave; whatever it raises propagates and nothing is written.
        """

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """Raises NotFoundError."""

    async def insert_api_token(self, token: ApiToken) -> None: ...

    async def list_api_tokens(self) -> list[ApiToken]: ...

    async def ingest(self, needs: IngestNeeds, build: IngestBuild) -> list[IngestWrite]:
        """Fetches ``needs``, runs ``build`` on it and stores what it returns, in one
        transaction: committed (durable) on return. Two concurrent ingests using one
        idempotency key never both insert an event: the second sees the first one's event
        (its ``build`` reruns if need be). Whatever ``build`` raises propagates; nothing is
        stored then."""

    async def get_event(self, event_id: str) -> Event:
        """Raises NotFoundError."""

    async def list_events(
        self, query: EventQuery, *, before_id: str, limit: int
    ) -> list[Event]: ...

    async def load_payloads(self, event_ids: Sequence[str]) -> dict[str, Payload]: ...

    async def get_delivery(self, delivery_id: str) -> Delivery:
        """Raises NotFoundError."""

    async def list_deliveries(
        self, query: DeliveryQuery, *, before_id: str, limit: int
    ) -> list[Delivery]: ...

    async def count_deliveries(self, query: DeliveryQuery) -> int: ...

    async def status_counts(self) -> StatusCounts:
        """Pending deliveries (scheduled, processing, retry) and endpoints, by status."""

    async def list_attempts(
        self, delivery_id: str, *, after_number: int, limit: int
    ) -> list[Attempt]: ...

    async def due_deliveries(self, *, after: float | None, until: float) -> list[Delivery]:
        """Pending deliveries (scheduled, processing, retry) due in (after, until]."""

    async def fifo_heads(self, endpoint_ids: Sequence[str]) -> dict[str, Delivery]:
        """The head of each endpoint's queue: its pending delivery with the smallest id
        (acceptance order), due or not; endpoints with none pending are left out. One query."""

    async def fifo_backlog(self, endpoint_id: str) -> tuple[Delivery | None, int]:
        """The endpoint's head (as fifo_heads) and how many pending deliveries wait behind it."""

    async def health_hours(
        self, endpoint_ids: Sequence[str], *, since: float, until: float, latency: bool = True
    ) -> list[HealthHour]:
        """The delivery health counters (core/health.py) of these endpoints for the hours
        that start in [since, until), by endpoint and hour, in one query; an hour without
        an attempt has no row. Without ``latency`` only the counts are read (the response
        times left empty): a seventh of the columns, for the endpoints list. ``record``
        adds to them in its own transaction, counting only the attempts it stores; they go
        with their endpoint, and ``prune`` removes those of hours that ended before its
        cutoff."""

    async def record(self, records: Sequence[AttemptRecord]) -> None:
        """Stores attempts and delivery updates, in order, in one transaction. The latest
        state of a delivery in the batch wins; an attempt of a delivery that no longer exists
        is skipped; a batch stored again (a retry after a lost reply) adds no attempt twice."""

    async def modify_delivery(self, delivery_id: str, change: DeliveryEdit) -> Delivery:
        """Applies ``change`` to the delivery and its endpoint atomically (like modify_endpoint)."""

    async def reschedule_deliveries(
        self, query: DeliveryQuery, *, now: float, reason: str, limit: int
    ) -> list[Delivery]:
        """Makes up to ``limit`` matching deliveries due now with one more attempt allowed."""

    # -- portal links and sessions ------------------------------------------------------------

    async def insert_portal_link(self, link: PortalLink, token_hash: bytes) -> None: ...

    async def get_portal_link(self, link_id: str) -> PortalLink:
        """Raises NotFoundError."""

    async def list_portal_links(
        self, *, owner_id: str, live_at: float | None, before_id: str, limit: int
    ) -> list[PortalLink]:
        """Newest first; ``live_at`` set: only links neither revoked nor expired then."""

    async def modify_portal_link(self, link_id: str, change: PortalLinkEdit) -> PortalLink:
        """Like modify_endpoint. A link that ``change`` revokes has all its sessions revoked
        in the same transaction."""

    async def open_portal_session(
        self, token_hash: bytes, session_hash: bytes, open_: PortalOpen
    ) -> tuple[PortalLink, PortalSession]:
        """Finds the link by its token hash (NotFoundError), runs ``open_`` on it and stores the
        link it returns with the new session, in one transaction: of two concurrent opens of a
        ONE_TIME link, the second sees the first one's used_at. Sessions long expired go too."""

    async def get_portal_session(self, session_hash: bytes) -> tuple[PortalSession, PortalLink]:
        """The session with this cookie hash and its link; raises NotFoundError."""

    async def end_portal_session(self, session_hash: bytes, *, now: float) -> None:
        """Revokes one session (sign out); unknown sessions are ignored."""

    # -- retention --------------------------------------------------------------------------

    def prune(self, *, now: float, period: float, batch: int) -> AsyncIterator[Pruned]:
        """Removes every event created more than ``period`` seconds before ``now`` whose
        deliveries have all ended (success, failure, discarded), with its deliveries and
        attempts, and the idempotency keys that old; yields what each step removed. A step is
        one short transaction of at most about ``batch`` events, so ingest and delivery go on
        between steps; an event with a delivery still waiting is kept whole, and a delivery
        moved back to waiting (RetryDelivery) while a step runs is never removed. Freed space
        is then given back or kept for reuse (SQLite: incremental vacuum; PostgreSQL: whole
        partitions dropped, VACUUM after row deletes). On a shared PostgreSQL one node prunes
        at a time; the others' runs yield nothing."""

    async def size_bytes(self) -> int:
        """The store's size on disk in bytes (SQLite: the database file and its WAL;
        PostgreSQL: convoyd's tables, their indexes and TOAST)."""
