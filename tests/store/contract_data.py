"""Rows for the store contract suite (test_contract_*.py): endpoints, events with their
deliveries, attempts and portal links, built the way the service layer builds them, and the
few calls that store a standard set of them or stand in for the service layer's callbacks.

Ids are real ULIDs of today, each after every earlier one (paging compares ids), so that on
PostgreSQL rows land in the daily partitions made at open rather than the DEFAULT one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from convoyd.core.ids import new_id
from convoyd.core.model import (
    ApiKeyAuth,
    Attempt,
    AttemptResult,
    BasicAuth,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointAuth,
    EndpointSpec,
    EndpointStatus,
    EndpointTls,
    Event,
    OAuth2Auth,
    OAuth2ClientAuth,
    Ordering,
    PortalLink,
    PortalLinkKind,
    PortalSession,
    RetryPolicy,
    RetryStrategy,
    Secret,
    SignatureConfig,
    SignatureHash,
    SignatureScheme,
)
from convoyd.errors import FailedPreconditionError, NotFoundError, UnauthenticatedError
from convoyd.service.portal import DEAD_LINK
from convoyd.store.base import AttemptRecord, IngestNeeds, IngestSnapshot, IngestWrite, Store

# Whole seconds, so that times derived from it survive the stores' microsecond columns.
T0 = float(int(time.time()))
_SEQUENCE = itertools.count(1)
# Edits of one row that race in a concurrent read-modify-write test.
EDITORS = 20


def ident(prefix: str) -> str:
    """A new id of ``prefix``, after every earlier one of this process."""
    n = next(_SEQUENCE)
    return new_id(prefix, T0 + n / 1000, random.Random(n))


def secret(created_at: float, *, expires_at: float | None = None) -> Secret:
    return Secret(
        id=ident("sec"),
        value=f"whsec_{created_at:.0f}",
        created_at=created_at,
        expires_at=expires_at,
    )


API_KEY = ApiKeyAuth(header_name="X-Api-Key", header_value="k-1")
# Every authentication method, each with every optional part set.
AUTH_METHODS: dict[str, EndpointAuth] = {
    "api_key": API_KEY,
    "basic": BasicAuth(username="convoyd", password="pa55:w\u00f6rd"),
    "oauth2": OAuth2Auth(
        token_url="https://auth.invalid/oauth/token",
        client_id="cid",
        client_secret="s3cr3t",
        scopes=("hooks:write", "read"),
        audience="https://api.invalid",
        client_auth=OAuth2ClientAuth.BODY,
    ),
}
# Text only: the store keeps PEM as given (tests/control checks real certificates).
TLS = EndpointTls(
    client_certificate_pem="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    client_key_pem="-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    ca_pem="-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
    client_certificate_not_after=1_900_000_000.5,
)


def endpoint(
    owner: str = "acme",
    *,
    status: EndpointStatus = EndpointStatus.ACTIVE,
    secrets: tuple[Secret, ...] | None = None,
    auth: EndpointAuth | None = API_KEY,
    tls: EndpointTls | None = None,
    ordering: Ordering = Ordering.CONCURRENT,
) -> Endpoint:
    """An endpoint with every optional part of its spec set (``auth``, ``tls`` and
    ``ordering`` vary), so a round trip covers them."""
    return Endpoint(
        id=ident("ep"),
        spec=EndpointSpec(
            url="https://hooks.invalid/in",
            name="orders",
            description="the order service",
            owner_id=owner,
            event_types=("order.paid", "order.sent"),
            http_timeout=7.5,
            rate_limit=10,
            rate_limit_duration=2.0,
            retry_policy=RetryPolicy(strategy=RetryStrategy.LINEAR, interval=30.0, max_retries=3),
            signature=SignatureConfig(
                scheme=SignatureScheme.CONVOY_ADVANCED, hash=SignatureHash.SHA512
            ),
            auth=auth,
            headers={"X-Team": "billing"},
            max_concurrency=4,
            tls=tls,
            ordering=ordering,
        ),
        status=status,
        status_reason="created",
        status_changed_at=1000.0,
        secrets=(secret(1000.0),) if secrets is None else secrets,
        created_at=1000.0,
        updated_at=1000.0,
    )


def without_secrets(ep: Endpoint) -> Endpoint:
    """``ep`` as an ingest snapshot holds it."""
    return dataclasses.replace(ep, secrets=())


def delivery(
    event: Event,
    target: Endpoint,
    *,
    status: DeliveryStatus = DeliveryStatus.SCHEDULED,
    next_attempt_at: float | None = None,
    attempt_count: int = 0,
) -> Delivery:
    return Delivery(
        id=ident("dl"),
        event_id=event.id,
        endpoint_id=target.id,
        owner_id=target.spec.owner_id,
        event_type=event.event_type,
        status=status,
        status_reason="",
        attempt_count=attempt_count,
        next_attempt_at=next_attempt_at,
        last_attempt_at=None,
        last_http_status=0,
        created_at=event.created_at,
        updated_at=event.created_at,
    )


def new_event(
    *,
    event_type: str = "order.paid",
    key: str = "",
    at: float = 100.0,
    owner_id: str = "",
    endpoint_ids: Sequence[str] = (),
    count: int = 0,
) -> Event:
    return Event(
        id=ident("ev"),
        event_type=event_type,
        data=b'{"total": 12}\x00\xff',  # payloads are bytes, not text
        idempotency_key=key,
        endpoint_ids=tuple(endpoint_ids),
        owner_id=owner_id,
        headers={"X-Request": key or "none", "Content-Language": "en"},
        created_at=at,
        delivery_count=count,
    )


def event_write(
    targets: Sequence[Endpoint],
    *,
    event_type: str = "order.paid",
    key: str = "",
    at: float = 100.0,
    owner_id: str = "",
    statuses: Sequence[DeliveryStatus] = (),
) -> IngestWrite:
    """A new event with a delivery to each of ``targets`` (of ``statuses``, else SCHEDULED
    and due at once)."""
    ev = new_event(
        event_type=event_type,
        key=key,
        at=at,
        owner_id=owner_id,
        endpoint_ids=() if owner_id else [t.id for t in targets],
        count=len(targets),
    )
    chosen = list(statuses) or [DeliveryStatus.SCHEDULED] * len(targets)
    deliveries = [
        delivery(ev, t, status=s, next_attempt_at=at if s is DeliveryStatus.SCHEDULED else None)
        for t, s in zip(targets, chosen, strict=True)
    ]
    return IngestWrite(event=ev, payload_hash=b"hash:" + ev.id.encode(), deliveries=deliveries)


def attempt(d: Delivery, number: int, *, http: int = 500) -> Attempt:
    return Attempt(
        id=ident("at"),
        delivery_id=d.id,
        number=number,
        result=AttemptResult.SUCCESS if http < 300 else AttemptResult.HTTP_ERROR,
        started_at=200.0 + number,
        duration=0.125,
        request_url="https://hooks.invalid/in",
        request_headers=(("webhook-id", d.id), ("authorization", "[redacted]")),
        response_status=http,
        response_headers=(("Server", "test"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")),
        response_body=b"\x00\xffnot text",
        response_body_truncated=number % 2 == 0,
        error="" if http else "connection refused",
        remote_address="127.0.0.1",
    )


def outcome(d: Delivery, number: int, status: DeliveryStatus, *, http: int = 500) -> AttemptRecord:
    """Attempt ``number`` of ``d`` and the delivery as it is after it."""
    after = dataclasses.replace(
        d,
        status=status,
        status_reason=f"attempt {number}",
        attempt_count=number,
        last_http_status=http,
        last_attempt_at=200.0 + number,
        next_attempt_at=300.0 + number if status is DeliveryStatus.RETRY else None,
        updated_at=200.0 + number,
    )
    return AttemptRecord(attempt=attempt(d, number, http=http), delivery=after)


def portal_link(
    *,
    kind: PortalLinkKind = PortalLinkKind.LONG_LIVED,
    owner_id: str = "acme",
    endpoint_ids: tuple[str, ...] = (),
    all_owners: bool = False,
    expires_at: float = 100_000.0,
    revoked_at: float | None = None,
) -> PortalLink:
    """A link of exactly one scope: ``endpoint_ids`` or ``all_owners`` if given, else the
    owner's."""
    scoped = bool(endpoint_ids) or all_owners
    return PortalLink(
        id=ident("pl"),
        name=f"{kind.value} link",
        owner_id="" if scoped else owner_id,
        endpoint_ids=endpoint_ids,
        all_owners=all_owners,
        can_manage_endpoints=bool(endpoint_ids),
        kind=kind,
        created_at=1000.0,
        expires_at=expires_at,
        revoked_at=revoked_at,
    )


def portal_session(link: PortalLink, *, created_at: float, expires_at: float) -> PortalSession:
    return PortalSession(
        id=ident("ps"), link_id=link.id, created_at=created_at, expires_at=expires_at
    )


# -- calls through a store, and callbacks -------------------------------------------------


def refuse(*_: object) -> Any:
    """An edit or callback that refuses whatever it is given."""
    raise FailedPreconditionError("refused")


async def snapshot_of(store: Store, needs: IngestNeeds) -> IngestSnapshot:
    """What an ingest of ``needs`` hands its build (which stores nothing)."""
    seen: list[IngestSnapshot] = []

    def build(snapshot: IngestSnapshot) -> list[IngestWrite]:
        seen.append(snapshot)
        return []

    assert await store.ingest(needs, build) == []
    return seen[-1]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Seeded:
    """Three endpoints (a, c of acme; b of globex), events e1..e3 at 100, 200, 300 and their
    deliveries by name: d1a is e1's delivery to a, etc."""

    endpoints: dict[str, Endpoint]
    events: dict[str, IngestWrite]
    deliveries: dict[str, Delivery]


async def seed(store: Store) -> Seeded:
    """Stores the rows ``Seeded`` describes, through ``store``."""
    eps = {"a": endpoint("acme"), "b": endpoint("globex"), "c": endpoint("acme")}
    for ep in eps.values():
        await store.insert_endpoint(ep)
    s = DeliveryStatus
    plans = [
        ("e1", "order.paid", 100.0, "", "ab", [s.SUCCESS, s.FAILURE]),
        ("e2", "order.sent", 200.0, "acme", "ac", [s.RETRY, s.SCHEDULED]),
        ("e3", "order.paid", 300.0, "", "bc", [s.DISCARDED, s.FAILURE]),
    ]
    events: dict[str, IngestWrite] = {}
    deliveries: dict[str, Delivery] = {}
    for name, event_type, at, owner, targets, statuses in plans:
        w = event_write(
            [eps[t] for t in targets],
            event_type=event_type,
            at=at,
            owner_id=owner,
            statuses=statuses,
        )
        events[name] = w
        deliveries.update({f"d{name[1]}{t}": d for t, d in zip(targets, w.deliveries, strict=True)})
    await store.ingest(IngestNeeds(), lambda _: list(events.values()))
    return Seeded(endpoints=eps, events=events, deliveries=deliveries)


async def one_delivery(
    store: Store, ep: Endpoint | None = None, *, status: DeliveryStatus = DeliveryStatus.SCHEDULED
) -> Delivery:
    """A new event with one delivery of ``status`` (to ``ep``, else to a new endpoint),
    stored."""
    if ep is None:
        ep = endpoint()
        await store.insert_endpoint(ep)
    w = event_write([ep], statuses=[status])
    await store.ingest(IngestNeeds(), lambda _: [w])
    return w.deliveries[0]


def key_hash(name: str) -> bytes:
    """A token's stored form, as service/portal.py's token_hash makes it."""
    return hashlib.sha256(name.encode()).digest()


def opening(session: PortalSession) -> Callable[[PortalLink], tuple[PortalLink, PortalSession]]:
    """An open callback that opens ``session`` and marks a ONE_TIME link used, refusing one
    used already (as PortalManager.open does)."""

    def open_(link: PortalLink) -> tuple[PortalLink, PortalSession]:
        if link.kind is PortalLinkKind.ONE_TIME:
            if link.used_at is not None:
                raise UnauthenticatedError(DEAD_LINK)
            link = dataclasses.replace(link, used_at=session.created_at)
        return link, session

    return open_


# -- retention: rows made at a given time, and whether they are gone or whole ---------------


def made_at(w: IngestWrite, at: float) -> IngestWrite:
    """``w`` with ids made at ``at``, as an ingest at that time makes them (the event and its
    deliveries share the instant, so they share a day partition on PostgreSQL)."""
    rng = random.Random(next(_SEQUENCE))
    event = dataclasses.replace(w.event, id=new_id("ev", at, rng))
    deliveries = [
        dataclasses.replace(d, id=new_id("dl", at, rng), event_id=event.id) for d in w.deliveries
    ]
    return dataclasses.replace(w, event=event, deliveries=deliveries)


async def gone(store: Store, w: IngestWrite) -> bool:
    """True when the event and every delivery of it are gone, and so their attempts."""
    try:
        await store.get_event(w.event.id)
    except NotFoundError:
        pass
    else:
        return False
    for d in w.deliveries:
        try:
            await store.get_delivery(d.id)
        except NotFoundError:
            pass
        else:
            return False
        if await store.list_attempts(d.id, after_number=0, limit=10):
            return False
    return True


async def whole(store: Store, w: IngestWrite) -> bool:
    """True when the event, its deliveries and all their attempts are still there."""
    await store.get_event(w.event.id)
    for d in w.deliveries:
        kept = await store.get_delivery(d.id)
        attempts = await store.list_attempts(d.id, after_number=0, limit=10)
        if kept.attempt_count != len(attempts):
            return False
    return True
