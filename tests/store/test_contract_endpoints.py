"""The Store contract (store/base.py) for endpoints and API tokens, edits of one endpoint at
once included, on the SQLite and the PostgreSQL store alike (tests/store/conftest.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from convoyd.core.model import DeliveryStatus, Endpoint, EndpointStatus, PortalLink, PortalSession
from convoyd.errors import FailedPreconditionError, NotFoundError
from convoyd.store.base import ApiToken, DeliveryQuery, IngestNeeds, Store
from tests.store.contract_data import (
    AUTH_METHODS,
    EDITORS,
    TLS,
    endpoint,
    event_write,
    ident,
    outcome,
    refuse,
    secret,
)

pytestmark = pytest.mark.both_stores


# -- endpoints and tokens --------------------------------------------------------------------


async def test_ping_answers(store: Store) -> None:
    assert await store.ping() is True


async def test_endpoint_round_trips_with_its_secrets_newest_first(
    store: Store, peer: Store
) -> None:
    ep = endpoint(secrets=(secret(2000.0, expires_at=5000.0), secret(1000.0)))
    await store.insert_endpoint(ep)
    assert await peer.get_endpoint(ep.id) == ep


@pytest.mark.parametrize("method", sorted(AUTH_METHODS))
async def test_every_authentication_method_and_tls_round_trip(
    store: Store, peer: Store, method: str
) -> None:
    with_tls = endpoint(auth=AUTH_METHODS[method], tls=TLS)
    bare = endpoint(auth=None)
    for ep in (with_tls, bare):
        await store.insert_endpoint(ep)
        assert await peer.get_endpoint(ep.id) == ep
    # And through an edit, which rewrites the spec: TLS removed, the method changed.
    other = AUTH_METHODS["basic" if method != "basic" else "oauth2"]

    def change(current: Endpoint) -> Endpoint:
        return dataclasses.replace(
            current, spec=dataclasses.replace(current.spec, auth=other, tls=None)
        )

    edited = await store.modify_endpoint(with_tls.id, change)
    assert edited.spec.auth == other and edited.spec.tls is None
    assert await peer.get_endpoint(with_tls.id) == edited
    assert await peer.list_endpoints() == [bare, edited]  # newest first, read by listing too


async def test_list_endpoints_filters_and_pages_newest_first(store: Store, peer: Store) -> None:
    statuses = [EndpointStatus.ACTIVE, EndpointStatus.PAUSED, EndpointStatus.ACTIVE]
    statuses += [EndpointStatus.INACTIVE, EndpointStatus.ACTIVE, EndpointStatus.PAUSED]
    eps = [endpoint("acme" if n % 2 == 0 else "globex", status=s) for n, s in enumerate(statuses)]
    for ep in eps:
        await store.insert_endpoint(ep)
    cases: list[tuple[dict[str, Any], list[int]]] = [
        ({}, [5, 4, 3, 2, 1, 0]),
        ({"owner_id": "acme"}, [4, 2, 0]),
        ({"status": EndpointStatus.PAUSED}, [5, 1]),
        ({"owner_id": "globex", "status": EndpointStatus.INACTIVE}, [3]),
        ({"before_id": eps[4].id}, [3, 2, 1, 0]),
        ({"limit": 2}, [5, 4]),
        ({"owner_id": "acme", "before_id": eps[4].id, "limit": 1}, [2]),
        ({"owner_id": "nobody"}, []),
        ({"before_id": eps[0].id}, []),
    ]
    for kwargs, expected in cases:
        got = await peer.list_endpoints(**kwargs)
        assert got == [eps[n] for n in expected], kwargs


async def test_modify_endpoint_stores_and_returns_the_edit(store: Store, peer: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    seen: list[Endpoint] = []
    added = secret(3000.0)

    def change(current: Endpoint) -> Endpoint:
        seen.append(current)
        spec = dataclasses.replace(current.spec, name="renamed", headers={"X-New": "1"})
        return dataclasses.replace(
            current, spec=spec, status=EndpointStatus.PAUSED, secrets=(added,), updated_at=3000.0
        )

    got = await store.modify_endpoint(ep.id, change)
    assert seen[-1] == ep  # the edit gets the row as stored
    assert got == change(ep)
    assert await peer.get_endpoint(ep.id) == got


async def test_modify_endpoint_edit_that_raises_writes_nothing(store: Store, peer: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    for error in (FailedPreconditionError("refused"), ValueError("refused")):

        def change(current: Endpoint, error: Exception = error) -> Endpoint:
            raise error

        with pytest.raises(type(error)) as raised:
            await store.modify_endpoint(ep.id, change)
        assert raised.value is error
    assert await peer.get_endpoint(ep.id) == ep


async def test_delete_endpoint_takes_its_deliveries_and_attempts(store: Store, peer: Store) -> None:
    gone, kept = endpoint(), endpoint()
    for ep in (gone, kept):
        await store.insert_endpoint(ep)
    w = event_write([gone, kept])
    await store.ingest(IngestNeeds(), lambda _: [w])
    d_gone, d_kept = w.deliveries
    await store.record([outcome(d, 1, DeliveryStatus.RETRY) for d in w.deliveries])

    await store.delete_endpoint(gone.id)
    with pytest.raises(NotFoundError):
        await peer.get_endpoint(gone.id)
    with pytest.raises(NotFoundError):
        await peer.get_delivery(d_gone.id)
    assert await peer.list_attempts(d_gone.id, after_number=0, limit=10) == []
    assert await peer.count_deliveries(DeliveryQuery(endpoint_ids=[gone.id])) == 0
    assert [e.id for e in await peer.list_endpoints()] == [kept.id]
    assert (await peer.get_delivery(d_kept.id)).attempt_count == 1
    assert len(await peer.list_attempts(d_kept.id, after_number=0, limit=10)) == 1
    # Its secrets went too: the same endpoint, secrets and all, can be inserted again.
    await store.insert_endpoint(gone)
    assert await peer.get_endpoint(gone.id) == gone


async def test_api_tokens_are_listed_by_id(store: Store, peer: Store) -> None:
    assert await peer.list_api_tokens() == []
    first, second = (
        ApiToken(
            id=ident("tok"),
            name=name,
            token_hash=hashlib.sha256(name.encode()).digest(),
            created_at=1000.5,
        )
        for name in ("ci", "ops")
    )
    await store.insert_api_token(second)
    await store.insert_api_token(first)
    assert await peer.list_api_tokens() == [first, second]


async def test_missing_rows_are_not_found(store: Store) -> None:
    # The service layer shows these messages to callers: both stores word them alike.
    def opens(_: PortalLink) -> tuple[PortalLink, PortalSession]:
        raise AssertionError("no link to open")

    cases: list[tuple[Callable[[], Awaitable[object]], str]] = [
        (lambda: store.get_endpoint("ep_missing"), "endpoint ep_missing not found"),
        (lambda: store.modify_endpoint("ep_missing", refuse), "endpoint ep_missing not found"),
        (lambda: store.delete_endpoint("ep_missing"), "endpoint ep_missing not found"),
        (lambda: store.get_event("ev_missing"), "event ev_missing not found"),
        (lambda: store.get_delivery("dl_missing"), "delivery dl_missing not found"),
        (lambda: store.modify_delivery("dl_missing", refuse), "delivery dl_missing not found"),
        (lambda: store.get_portal_link("pl_missing"), "portal link pl_missing not found"),
        (
            lambda: store.modify_portal_link("pl_missing", refuse),
            "portal link pl_missing not found",
        ),
        (
            lambda: store.open_portal_session(b"\x01" * 32, b"\x02" * 32, opens),
            "portal link not found",
        ),
        (lambda: store.get_portal_session(b"\x03" * 32), "portal session not found"),
    ]
    for call, message in cases:
        with pytest.raises(NotFoundError) as raised:
            await call()
        assert str(raised.value) == message


# -- concurrent read-modify-write -------------------------------------------------------------


async def test_concurrent_endpoint_edits_all_stay(store: Store, peers: list[Store]) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    stores = [store, *peers]

    def append(n: int) -> Callable[[Endpoint], Endpoint]:
        def change(current: Endpoint) -> Endpoint:
            spec = dataclasses.replace(current.spec, name=f"{current.spec.name}<{n}>")
            return dataclasses.replace(current, spec=spec)

        return change

    await asyncio.gather(
        *(stores[n % len(stores)].modify_endpoint(ep.id, append(n)) for n in range(EDITORS))
    )
    name = (await peers[-1].get_endpoint(ep.id)).spec.name
    tags = name.removeprefix(ep.spec.name).removeprefix("<").removesuffix(">").split("><")
    assert sorted(tags, key=int) == [str(n) for n in range(EDITORS)]
