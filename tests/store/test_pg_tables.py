"""The PostgreSQL endpoint and portal tables for real, each test on a fresh database: the same
results as the SQLite store for the same input, no lost update under concurrency, and no
attempt outliving its delivery when an endpoint is deleted while its attempts are recorded.

The server is the suite's own (tests/pgserver.py; $CONVOYD_TEST_POSTGRES_DSN names another).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar, cast

import asyncpg
import pytest

from convoyd.core.model import (
    ApiKeyAuth,
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointSpec,
    EndpointStatus,
    PortalLink,
    PortalLinkKind,
    PortalSession,
    RetryPolicy,
    RetryStrategy,
    Secret,
)
from convoyd.errors import FailedPreconditionError, NotFoundError, UnauthenticatedError
from convoyd.service.portal import DEAD_LINK
from convoyd.settings import PostgresSettings
from convoyd.store import codec
from convoyd.store.base import ApiToken, AttemptRecord, EndpointEdit, PortalLinkEdit, PortalOpen
from convoyd.store.pg_connections import PgConnections
from convoyd.store.pg_endpoints import PgEndpointTables
from convoyd.store.pg_events import PgEventTables
from convoyd.store.pg_portal import PgPortalTables
from convoyd.store.portal_sql import SESSION_KEEP_AFTER_EXPIRY
from convoyd.store.sqlite import SqliteStore
from tests.pgserver import lock_waiters

T = TypeVar("T")


@pytest.fixture
def dsn(postgres_dsn: str) -> str:
    """A fresh database of this test's own on the suite's server (tests/conftest.py)."""
    return postgres_dsn


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[PgConnections]:
    # Room for every concurrent caller of the tests below to hold a connection at once.
    conns = PgConnections(PostgresSettings(dsn=dsn, pool_size=32))
    await conns.open()
    yield conns
    await conns.close()


@pytest.fixture
def endpoints(db: PgConnections) -> PgEndpointTables:
    return PgEndpointTables(db)


@pytest.fixture
def portal(db: PgConnections) -> PgPortalTables:
    return PgPortalTables(db)


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path)
    await store.open()
    yield store
    await store.close()


def endpoint(n: int, *, owner: str = "acme", secret_count: int = 1) -> Endpoint:
    return Endpoint(
        id=f"ep_{n:026d}",
        spec=EndpointSpec(
            url=f"https://hooks.example.invalid/{n}",
            name=f"endpoint {n}",
            owner_id=owner,
            event_types=("order.created", "order.paid"),
            retry_policy=RetryPolicy(strategy=RetryStrategy.EXPONENTIAL, max_retries=4),
            auth=ApiKeyAuth(header_name="X-Key", header_value="k"),
            headers={"X-N": str(n)},
        ),
        status=EndpointStatus.ACTIVE if n % 3 else EndpointStatus.PAUSED,
        status_reason="created",
        status_changed_at=1000.000001 + n,
        # Given oldest first, with a tie on created_at: the store returns them newest first,
        # ties by id descending.
        secrets=tuple(
            Secret(
                id=f"sec_{n}_{k}",
                value=f"whsec_{n}_{k}",
                created_at=1000.0 + k // 2,
                expires_at=None if k == 0 else 5000.25 + k,
            )
            for k in range(secret_count)
        ),
        created_at=1000.5 + n,
        updated_at=1000.5 + n,
    )


async def test_endpoint_round_trip_with_secrets_equals_sqlite(
    endpoints: PgEndpointTables, sqlite: SqliteStore
) -> None:
    ep = endpoint(1, secret_count=4)
    await endpoints.insert_endpoint(ep)
    await sqlite.insert_endpoint(ep)
    got = await endpoints.get_endpoint(ep.id)
    assert got == await sqlite.get_endpoint(ep.id)
    assert [s.id for s in got.secrets] == ["sec_1_3", "sec_1_2", "sec_1_1", "sec_1_0"]
    assert dataclasses.replace(got, secrets=ep.secrets) == ep

    # A modify replaces the secrets with exactly those the change returns.
    rotated = Secret(id="sec_1_9", value="whsec_new", created_at=2000.0)

    def rotate(e: Endpoint) -> Endpoint:
        return dataclasses.replace(e, secrets=(rotated, e.secrets[-1]), updated_at=2000.0)

    pg_result = await endpoints.modify_endpoint(ep.id, rotate)
    assert pg_result == await sqlite.modify_endpoint(ep.id, rotate)
    assert await endpoints.get_endpoint(ep.id) == await sqlite.get_endpoint(ep.id)
    assert [s.id for s in (await endpoints.get_endpoint(ep.id)).secrets] == ["sec_1_9", "sec_1_0"]

    # And to none at all.
    bare = await endpoints.modify_endpoint(ep.id, lambda e: dataclasses.replace(e, secrets=()))
    assert bare.secrets == ()
    assert (await endpoints.get_endpoint(ep.id)).secrets == ()


async def test_missing_endpoint_errors_equal_sqlite(
    endpoints: PgEndpointTables, sqlite: SqliteStore
) -> None:
    missing = "ep_01J0000000000000000000000X"
    pairs: list[tuple[Awaitable[object], Awaitable[object]]] = [
        (endpoints.get_endpoint(missing), sqlite.get_endpoint(missing)),
        (endpoints.delete_endpoint(missing), sqlite.delete_endpoint(missing)),
        (
            endpoints.modify_endpoint(missing, lambda e: e),
            sqlite.modify_endpoint(missing, lambda e: e),
        ),
    ]
    for on_pg, on_sqlite in pairs:
        with pytest.raises(NotFoundError) as pg_error:
            await on_pg
        with pytest.raises(NotFoundError) as sqlite_error:
            await on_sqlite
        assert str(pg_error.value) == str(sqlite_error.value) == f"endpoint {missing} not found"


async def test_list_filters_and_pages_newest_first_as_sqlite(
    endpoints: PgEndpointTables, sqlite: SqliteStore
) -> None:
    for n in range(9):
        ep = endpoint(n, owner="acme" if n % 2 else "globex", secret_count=n % 4)
        await endpoints.insert_endpoint(ep)
        await sqlite.insert_endpoint(ep)
    queries: list[dict[str, object]] = [
        {},
        {"owner_id": "acme"},
        {"owner_id": "acme", "before_id": endpoint(7).id, "limit": 2},
        {"status": EndpointStatus.PAUSED},
        {"status": EndpointStatus.ACTIVE, "owner_id": "globex", "limit": 1},
        {"before_id": endpoint(3).id},
        {"owner_id": "nobody"},
        # The limit counts endpoints, not their secrets' rows.
        {"limit": 3},
    ]
    for query in queries:
        got = await endpoints.list_endpoints(**query)  # type: ignore[arg-type]
        assert got == await sqlite.list_endpoints(**query), query  # type: ignore[arg-type]
    assert [e.id for e in await endpoints.list_endpoints(limit=3)] == [
        endpoint(n).id for n in (8, 7, 6)
    ]
    assert [len(e.secrets) for e in await endpoints.list_endpoints(limit=4)] == [0, 3, 2, 1]
    acme = await endpoints.list_endpoints(owner_id="acme")
    assert [e.id for e in acme] == [endpoint(n).id for n in (7, 5, 3, 1)]


async def test_concurrent_modifies_lose_nothing(endpoints: PgEndpointTables) -> None:
    ep = endpoint(1, secret_count=0)
    await endpoints.insert_endpoint(
        dataclasses.replace(ep, spec=dataclasses.replace(ep.spec, name=""))
    )
    letters = "abcdefghijklmnopqrst"

    def append(letter: str) -> EndpointEdit:
        def change(e: Endpoint) -> Endpoint:
            # The secret too: a lost update of the secrets (read before the lock) shows here.
            secret = Secret(id=f"sec_{letter}", value="v", created_at=1000.0 + ord(letter))
            return dataclasses.replace(
                e,
                spec=dataclasses.replace(e.spec, name=e.spec.name + letter),
                secrets=(secret, *e.secrets),
            )

        return change

    await asyncio.gather(*(endpoints.modify_endpoint(ep.id, append(c)) for c in letters))
    final = await endpoints.get_endpoint(ep.id)
    assert sorted(final.spec.name) == list(letters)
    assert sorted(s.id for s in final.secrets) == sorted(f"sec_{c}" for c in letters)


async def test_a_refused_change_writes_nothing(endpoints: PgEndpointTables) -> None:
    ep = endpoint(1, secret_count=2)
    await endpoints.insert_endpoint(ep)

    def refuse(e: Endpoint) -> Endpoint:
        raise FailedPreconditionError("refused")

    with pytest.raises(FailedPreconditionError, match="refused"):
        await endpoints.modify_endpoint(ep.id, refuse)

    def fail(e: Endpoint) -> Endpoint:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await endpoints.modify_endpoint(ep.id, fail)
    got = await endpoints.get_endpoint(ep.id)
    assert dataclasses.replace(got, secrets=ep.secrets) == ep
    assert len(got.secrets) == 2


def _delivery(n: int, endpoint_id: str) -> Delivery:
    return Delivery(
        id=f"dl_{n:026d}",
        event_id=f"ev_{n:026d}",
        endpoint_id=endpoint_id,
        owner_id="acme",
        event_type="order.created",
        status=DeliveryStatus.RETRY,
        status_reason="",
        attempt_count=1,
        next_attempt_at=2000.0,
        last_attempt_at=1500.0,
        last_http_status=500,
        created_at=1000.0,
        updated_at=1500.0,
    )


def _attempt(delivery_id: str) -> Attempt:
    return Attempt(
        id="at_1",
        delivery_id=delivery_id,
        number=1,
        result=AttemptResult.HTTP_ERROR,
        started_at=1500.0,
        duration=0.25,
        request_url="https://hooks.example.invalid/1",
        request_headers=(("content-type", "application/json"),),
        response_status=500,
        response_headers=(),
        response_body=b"down",
        response_body_truncated=False,
        error="",
        remote_address="",
    )


async def _count(db: PgConnections, table: str) -> int:
    rows = await db.fetch(f"SELECT count(*) AS n FROM {table}")  # noqa: S608 - test constants
    n: int = rows[0]["n"]
    return n


_INSERT_DELIVERY = (
    f"INSERT INTO deliveries ({codec.DELIVERY_COLUMNS})"  # noqa: S608 - constant columns
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(codec.DELIVERY_NAMES) + 1))})"
)
_INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({codec.ATTEMPT_COLUMNS})"  # noqa: S608 - constant columns
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(codec.ATTEMPT_NAMES) + 1))})"
)


async def test_delete_takes_secrets_deliveries_and_attempts(
    db: PgConnections, endpoints: PgEndpointTables, sqlite: SqliteStore
) -> None:
    gone, kept = endpoint(1, secret_count=3), endpoint(2, secret_count=1)
    for ep in (gone, kept):
        await endpoints.insert_endpoint(ep)
    for n, ep in ((1, gone), (2, gone), (3, kept)):
        delivery = _delivery(n, ep.id)
        await db.execute(_INSERT_DELIVERY, *codec.delivery_to_row(delivery))
        await db.execute(_INSERT_ATTEMPT, *codec.attempt_to_row(_attempt(delivery.id)))

    await endpoints.delete_endpoint(gone.id)
    assert (await _count(db, "endpoints"), await _count(db, "endpoint_secrets")) == (1, 1)
    assert (await _count(db, "deliveries"), await _count(db, "attempts")) == (1, 1)
    assert await endpoints.get_endpoint(kept.id) == kept
    with pytest.raises(NotFoundError, match=f"endpoint {gone.id} not found"):
        await endpoints.delete_endpoint(gone.id)


class _HeldOpen:
    """Stands in for PgConnections: runs each job on ``conn`` inside the transaction the test
    opened there, so that the test decides when the store's writes commit."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def transaction(self, job: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await job(self._conn)


def _held_open(conn: asyncpg.Connection) -> PgConnections:
    return cast(PgConnections, _HeldOpen(conn))


async def _one_delivery(db: PgConnections, endpoints: PgEndpointTables) -> AttemptRecord:
    """An endpoint with one delivery, and the outcome of that delivery's first attempt."""
    ep = endpoint(1)
    await endpoints.insert_endpoint(ep)
    delivery = _delivery(1, ep.id)
    await db.execute(_INSERT_DELIVERY, *codec.delivery_to_row(delivery))
    return AttemptRecord(attempt=_attempt(delivery.id), delivery=delivery)


async def test_an_attempt_recorded_while_its_endpoint_is_deleted_is_not_stored(
    db: PgConnections, endpoints: PgEndpointTables, dsn: str
) -> None:
    record = await _one_delivery(db, endpoints)
    deleter = await asyncpg.connect(dsn)
    try:
        # delete_endpoint done but not committed when the batch is written: the batch waits
        # for the delivery, then finds it gone.
        tx = deleter.transaction()
        await tx.start()
        await PgEndpointTables(_held_open(deleter)).delete_endpoint(record.delivery.endpoint_id)
        recording = asyncio.create_task(PgEventTables(db).record([record]))
        await lock_waiters(deleter, 1)
        await tx.commit()
        await recording
    finally:
        await deleter.close()

    assert (await _count(db, "deliveries"), await _count(db, "attempts")) == (0, 0)


async def test_an_endpoint_deleted_while_an_attempt_is_recorded_takes_the_attempt(
    db: PgConnections, endpoints: PgEndpointTables, dsn: str
) -> None:
    record = await _one_delivery(db, endpoints)
    recorder = await asyncpg.connect(dsn)
    try:
        # The batch written but not committed when the endpoint is deleted: the delete waits
        # for it, then takes its attempt too.
        tx = recorder.transaction()
        await tx.start()
        await PgEventTables(_held_open(recorder)).record([record])
        deleting = asyncio.create_task(endpoints.delete_endpoint(record.delivery.endpoint_id))
        await lock_waiters(recorder, 1)
        await tx.commit()
        await deleting
    finally:
        await recorder.close()

    assert (await _count(db, "deliveries"), await _count(db, "attempts")) == (0, 0)


async def test_api_tokens_as_sqlite(endpoints: PgEndpointTables, sqlite: SqliteStore) -> None:
    tokens = [
        ApiToken(id="tok_b", name="ci", token_hash=b"\x00\xffb" * 10, created_at=1000.000001),
        ApiToken(id="tok_a", name="admin", token_hash=b"\x01a" * 16, created_at=999.5),
    ]
    for token in tokens:
        await endpoints.insert_api_token(token)
        await sqlite.insert_api_token(token)
    got = await endpoints.list_api_tokens()
    assert got == await sqlite.list_api_tokens()
    assert got == sorted(tokens, key=lambda t: t.id)


# -- portal links and sessions ------------------------------------------------------------


def link(n: int, **fields: object) -> PortalLink:
    values: dict[str, object] = {
        "id": f"pl_{n:026d}",
        "name": f"link {n}",
        "owner_id": "acme",
        "kind": PortalLinkKind.LONG_LIVED,
        "created_at": 1000.25 + n,
        "expires_at": 10_000.0 + n,
    }
    values.update(fields)
    return PortalLink(**values)  # type: ignore[arg-type]


class PortalTables(Protocol):
    """What PgPortalTables and SqliteStore share, for a scenario run on both."""

    async def insert_portal_link(self, link: PortalLink, token_hash: bytes) -> None: ...
    async def get_portal_link(self, link_id: str) -> PortalLink: ...
    async def modify_portal_link(self, link_id: str, change: PortalLinkEdit) -> PortalLink: ...
    async def open_portal_session(
        self, token_hash: bytes, session_hash: bytes, open_: PortalOpen
    ) -> tuple[PortalLink, PortalSession]: ...
    async def get_portal_session(self, session_hash: bytes) -> tuple[PortalSession, PortalLink]: ...
    async def end_portal_session(self, session_hash: bytes, *, now: float) -> None: ...


def _hash(text: str) -> bytes:
    return text.encode().ljust(32, b"\0")


async def test_portal_links_round_trip_as_sqlite(
    portal: PgPortalTables, sqlite: SqliteStore
) -> None:
    links = [
        link(1),
        link(2, owner_id="", endpoint_ids=("ep_1", "ep_2"), can_manage_endpoints=True),
        link(3, owner_id="", all_owners=True, kind=PortalLinkKind.ONE_TIME),
        link(4, revoked_at=1500.0),
        link(5, expires_at=2000.0, used_at=1100.0),
        link(6, owner_id="globex"),
    ]
    for n, each in enumerate(links):
        await portal.insert_portal_link(each, _hash(f"token {n}"))
        await sqlite.insert_portal_link(each, _hash(f"token {n}"))
    for each in links:
        assert await portal.get_portal_link(each.id) == each
        assert await sqlite.get_portal_link(each.id) == each
    queries: list[dict[str, object]] = [
        {"owner_id": "", "live_at": None, "before_id": "", "limit": 50},
        {"owner_id": "acme", "live_at": None, "before_id": "", "limit": 50},
        {"owner_id": "acme", "live_at": 3000.0, "before_id": "", "limit": 50},
        {"owner_id": "", "live_at": 3000.0, "before_id": links[5].id, "limit": 2},
        {"owner_id": "", "live_at": None, "before_id": links[3].id, "limit": 1},
    ]
    for query in queries:
        got = await portal.list_portal_links(**query)  # type: ignore[arg-type]
        assert got == await sqlite.list_portal_links(**query), query  # type: ignore[arg-type]
    live = await portal.list_portal_links(owner_id="acme", live_at=3000.0, before_id="", limit=9)
    assert [each.id for each in live] == [links[0].id]

    missing = "pl_01J0000000000000000000000X"
    stores: tuple[PortalTables, ...] = (portal, sqlite)
    for store in stores:
        with pytest.raises(NotFoundError, match=f"^portal link {missing} not found$"):
            await store.get_portal_link(missing)
        with pytest.raises(NotFoundError, match=f"^portal link {missing} not found$"):
            await store.modify_portal_link(missing, lambda each: each)
        with pytest.raises(NotFoundError, match=r"^portal link not found$"):
            await store.open_portal_session(b"nope", b"nope", _open_again(0))
        with pytest.raises(NotFoundError, match=r"^portal session not found$"):
            await store.get_portal_session(b"nope")
        await store.end_portal_session(b"nope", now=1.0)  # unknown: ignored


def _session(n: int, of: PortalLink, *, at: float = 1200.0) -> PortalSession:
    return PortalSession(id=f"ps_{n:026d}", link_id=of.id, created_at=at, expires_at=at + 3600)


def _open_once(n: int, now: float) -> PortalOpen:
    """What PortalManager.open's callback does with a ONE_TIME link (convoyd/service/portal.py)."""

    def open_(current: PortalLink) -> tuple[PortalLink, PortalSession]:
        if not current.is_live(now) or current.used_at is not None:
            raise UnauthenticatedError(DEAD_LINK)
        return dataclasses.replace(current, used_at=now), _session(n, current, at=now)

    return open_


def _open_again(n: int, *, at: float = 1200.0) -> PortalOpen:
    """Opening a LONG_LIVED link: the link unchanged, session ``n``."""
    return lambda current: (current, _session(n, current, at=at))


async def test_one_time_link_opened_by_30_at_once_opens_one_session(
    db: PgConnections, portal: PgPortalTables
) -> None:
    one = link(1, kind=PortalLinkKind.ONE_TIME)
    await portal.insert_portal_link(one, _hash("token"))
    results = await asyncio.gather(
        *(
            portal.open_portal_session(_hash("token"), _hash(f"s{n}"), _open_once(n, 1200.0 + n))
            for n in range(30)
        ),
        return_exceptions=True,
    )
    opened = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(opened) == 1
    assert all(isinstance(r, UnauthenticatedError) and str(r) == DEAD_LINK for r in refused)
    assert await _count(db, "portal_sessions") == 1
    stored_link, session = opened[0]
    assert await portal.get_portal_link(one.id) == stored_link
    assert stored_link.used_at == session.created_at
    assert await portal.get_portal_session(_hash(f"s{int(session.id[3:])}")) == (
        session,
        stored_link,
    )


async def test_revoking_a_link_revokes_its_sessions_as_sqlite(
    portal: PgPortalTables, sqlite: SqliteStore
) -> None:
    shared, other = link(1), link(2)
    stores: tuple[PortalTables, ...] = (portal, sqlite)
    for store in stores:
        await store.insert_portal_link(shared, _hash("shared"))
        await store.insert_portal_link(other, _hash("other"))
        for n in range(3):
            await store.open_portal_session(_hash("shared"), _hash(f"s{n}"), _open_again(n))
        await store.open_portal_session(_hash("other"), _hash("o"), _open_again(9))
        await store.end_portal_session(_hash("s0"), now=1300.0)
        revoked = await store.modify_portal_link(
            shared.id, lambda each: dataclasses.replace(each, revoked_at=1400.0)
        )
        assert revoked == dataclasses.replace(shared, revoked_at=1400.0)

    for key in ("s0", "s1", "s2", "o"):
        assert await portal.get_portal_session(_hash(key)) == await sqlite.get_portal_session(
            _hash(key)
        )
    ended = [(await portal.get_portal_session(_hash(f"s{n}")))[0].revoked_at for n in range(3)]
    assert ended == [1300.0, 1400.0, 1400.0]
    session, of = await portal.get_portal_session(_hash("o"))
    assert (session.revoked_at, of) == (None, other)


async def test_long_expired_sessions_go_when_one_opens(portal: PgPortalTables) -> None:
    each = link(1, expires_at=10**9)
    await portal.insert_portal_link(each, _hash("token"))
    await portal.open_portal_session(_hash("token"), _hash("old"), _open_again(1, at=1000.0))
    # Expired (at 4600) but not yet a day ago: kept.
    later = 4600.0 + SESSION_KEEP_AFTER_EXPIRY - 1
    await portal.open_portal_session(_hash("token"), _hash("mid"), _open_again(2, at=later))
    assert (await portal.get_portal_session(_hash("old")))[0].id == _session(1, each).id
    await portal.open_portal_session(_hash("token"), _hash("new"), _open_again(3, at=later + 2))
    with pytest.raises(NotFoundError):
        await portal.get_portal_session(_hash("old"))
    assert (await portal.get_portal_session(_hash("mid")))[0].id == _session(2, each).id


# -- the facade ---------------------------------------------------------------------------


async def test_facade_opens_pings_and_delegates(dsn: str) -> None:
    from convoyd.store.pg import PostgresStore

    store = PostgresStore(PostgresSettings(dsn=dsn))
    parts = urllib.parse.urlsplit(dsn)
    assert store.where == f"{parts.hostname}:{parts.port}{parts.path}"
    await store.open()
    try:
        assert await store.ping()
        ep = endpoint(1, secret_count=1)
        await store.insert_endpoint(ep)
        assert await store.get_endpoint(ep.id) == ep
        assert await store.list_endpoints(owner_id="acme") == [ep]
        await store.delete_endpoint(ep.id)
        assert await store.list_endpoints() == []
    finally:
        await store.close()
    assert not await store.ping()


async def test_the_portal_service_opens_a_one_time_link_once(dsn: str) -> None:
    from convoyd.service.portal import PortalLinkRequest, PortalManager
    from convoyd.store.pg import PostgresStore

    store = PostgresStore(PostgresSettings(dsn=dsn, pool_size=32))
    await store.open()
    try:
        manager = PortalManager(store, clock=lambda: 1000.0, rng=random.Random(7))
        created, token = await manager.create(PortalLinkRequest(owner_id="acme"))
        results = await asyncio.gather(
            *(manager.open(token) for _ in range(30)), return_exceptions=True
        )
        opened = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(opened) == 1
        assert all(isinstance(r, UnauthenticatedError) for r in refused)
        await manager.revoke(created.id)
        with pytest.raises(UnauthenticatedError):
            await manager.session(opened[0].token)
    finally:
        await store.close()
