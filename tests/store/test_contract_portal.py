"""The Store contract (store/base.py) for portal links and sessions, on the SQLite and the
PostgreSQL store alike (tests/store/conftest.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest

from convoyd.core.model import PortalLinkKind
from convoyd.errors import FailedPreconditionError, NotFoundError, UnauthenticatedError
from convoyd.service.portal import OpenedSession, PortalLinkRequest, PortalManager
from convoyd.store.base import Store
from tests.store.contract_data import T0, key_hash, opening, portal_link, portal_session, refuse

pytestmark = pytest.mark.both_stores


# -- portal links and sessions ----------------------------------------------------------------


async def test_portal_links_round_trip_in_every_scope(store: Store, peer: Store) -> None:
    links = [
        portal_link(kind=PortalLinkKind.ONE_TIME),
        portal_link(endpoint_ids=("ep_1", "ep_2")),
        portal_link(all_owners=True, revoked_at=1500.0),
    ]
    for link in links:
        await store.insert_portal_link(link, key_hash(link.id))
    for link in links:
        assert await peer.get_portal_link(link.id) == link


async def test_list_portal_links_filters_and_pages_newest_first(store: Store, peer: Store) -> None:
    links = [
        portal_link(owner_id="acme"),
        portal_link(owner_id="acme", revoked_at=1500.0),
        portal_link(owner_id="globex", expires_at=1500.0),
        portal_link(owner_id="acme", expires_at=2000.0),  # not live at 2000 itself
        portal_link(owner_id="globex"),
        portal_link(owner_id="acme", kind=PortalLinkKind.ONE_TIME),
    ]
    for link in links:
        await store.insert_portal_link(link, key_hash(link.id))
    cases: list[tuple[str, float | None, int, int, list[int]]] = [
        ("", None, -1, 50, [5, 4, 3, 2, 1, 0]),
        ("acme", None, -1, 50, [5, 3, 1, 0]),
        ("", 2000.0, -1, 50, [5, 4, 0]),
        ("acme", 2000.0, -1, 50, [5, 0]),
        ("", 1999.0, -1, 50, [5, 4, 3, 0]),
        ("", None, 3, 2, [2, 1]),
        ("acme", None, 5, 1, [3]),
        ("globex", 2000.0, 4, 50, []),
    ]
    for owner, live_at, before, limit, expected in cases:
        got = await peer.list_portal_links(
            owner_id=owner,
            live_at=live_at,
            before_id=links[before].id if before >= 0 else "",
            limit=limit,
        )
        assert got == [links[n] for n in expected], (owner, live_at, before, limit)


async def test_revoking_a_link_revokes_its_sessions(store: Store, peer: Store) -> None:
    link, other = portal_link(), portal_link()
    for each in (link, other):
        await store.insert_portal_link(each, key_hash(each.id))
    sessions = {
        name: portal_session(on, created_at=1000.0, expires_at=50_000.0)
        for name, on in (("open", link), ("ended", link), ("other", other))
    }
    for name, session in sessions.items():
        on = link if session.link_id == link.id else other
        await store.open_portal_session(key_hash(on.id), key_hash(name), opening(session))
    await store.end_portal_session(key_hash("ended"), now=1100.0)

    got = await store.modify_portal_link(
        link.id, lambda current: dataclasses.replace(current, revoked_at=1200.0)
    )
    revoked = dataclasses.replace(link, revoked_at=1200.0)
    assert got == revoked
    assert await peer.get_portal_link(link.id) == revoked
    cases = [("open", 1200.0, revoked), ("ended", 1100.0, revoked), ("other", None, other)]
    for name, revoked_at, of in cases:
        expected = dataclasses.replace(sessions[name], revoked_at=revoked_at)
        assert await peer.get_portal_session(key_hash(name)) == (expected, of), name


async def test_modify_portal_link_edit_that_raises_writes_nothing(
    store: Store, peer: Store
) -> None:
    link = portal_link()
    await store.insert_portal_link(link, key_hash(link.id))
    session = portal_session(link, created_at=1000.0, expires_at=50_000.0)
    await store.open_portal_session(key_hash(link.id), key_hash("s"), opening(session))
    with pytest.raises(FailedPreconditionError, match="refused"):
        await store.modify_portal_link(link.id, refuse)
    assert await peer.get_portal_link(link.id) == link
    assert await peer.get_portal_session(key_hash("s")) == (session, link)


async def test_an_open_callback_that_raises_writes_nothing(store: Store, peer: Store) -> None:
    link = portal_link(kind=PortalLinkKind.ONE_TIME)
    await store.insert_portal_link(link, key_hash(link.id))
    with pytest.raises(FailedPreconditionError, match="refused"):
        await store.open_portal_session(key_hash(link.id), key_hash("s"), refuse)
    assert await peer.get_portal_link(link.id) == link
    with pytest.raises(NotFoundError):
        await peer.get_portal_session(key_hash("s"))


async def test_one_time_link_opened_by_many_at_once_gives_one_session(
    store: Store, peers: list[Store]
) -> None:
    link = portal_link(kind=PortalLinkKind.ONE_TIME)
    await store.insert_portal_link(link, key_hash(link.id))
    stores = [store, *peers]
    sessions = [portal_session(link, created_at=1000.0 + n, expires_at=50_000.0) for n in range(30)]
    results = await asyncio.gather(
        *(
            stores[n % len(stores)].open_portal_session(
                key_hash(link.id), key_hash(f"s{n}"), opening(session)
            )
            for n, session in enumerate(sessions)
        ),
        return_exceptions=True,
    )
    opened = [(n, r) for n, r in enumerate(results) if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(opened) == 1
    assert all(isinstance(r, UnauthenticatedError) for r in refused), refused
    ((winner, (used, session)),) = opened
    assert session == sessions[winner]
    assert used == dataclasses.replace(link, used_at=session.created_at)
    assert await peers[-1].get_portal_link(link.id) == used
    for n in range(30):
        if n == winner:
            assert await peers[-1].get_portal_session(key_hash(f"s{n}")) == (session, used)
        else:
            with pytest.raises(NotFoundError):
                await peers[-1].get_portal_session(key_hash(f"s{n}"))


async def test_portal_manager_opens_a_one_time_link_once(store: Store, peers: list[Store]) -> None:
    """The same race through the service layer's own open callback."""
    managers = [
        PortalManager(s, clock=lambda: T0, rng=random.Random(n))
        for n, s in enumerate([store, *peers])
    ]
    link, token = await managers[0].create(PortalLinkRequest(owner_id="acme"))
    results = await asyncio.gather(
        *(managers[n % len(managers)].open(token) for n in range(30)), return_exceptions=True
    )
    opened = [r for r in results if isinstance(r, OpenedSession)]
    assert len(opened) == 1, results
    assert all(isinstance(r, UnauthenticatedError) for r in results if r not in opened)
    assert (await peers[-1].get_portal_link(link.id)).used_at == T0
    session, of = await managers[-1].session(opened[0].token)
    assert (session, of) == (opened[0].session, opened[0].link)

    long_lived = PortalLinkRequest(owner_id="acme", kind=PortalLinkKind.LONG_LIVED)
    _, token = await managers[0].create(long_lived)
    again = await asyncio.gather(*(m.open(token) for m in managers))
    assert len({o.session.id for o in again}) == len(managers)
    assert all(o.link.used_at is None for o in again)


async def test_portal_sessions_are_found_and_ended(store: Store, peer: Store) -> None:
    link = portal_link(kind=PortalLinkKind.ONE_TIME)
    await store.insert_portal_link(link, key_hash(link.id))
    session = portal_session(link, created_at=1000.0, expires_at=50_000.0)
    used, got = await store.open_portal_session(key_hash(link.id), key_hash("s"), opening(session))
    assert (used, got) == (dataclasses.replace(link, used_at=1000.0), session)
    assert await peer.get_portal_session(key_hash("s")) == (session, used)

    await store.end_portal_session(key_hash("s"), now=1500.0)
    await store.end_portal_session(key_hash("s"), now=1600.0)  # signed out already: kept as was
    await store.end_portal_session(key_hash("unknown"), now=1600.0)  # ignored
    ended = dataclasses.replace(session, revoked_at=1500.0)
    assert await peer.get_portal_session(key_hash("s")) == (ended, used)


async def test_opening_a_session_removes_sessions_long_expired(store: Store, peer: Store) -> None:
    link = portal_link(expires_at=1e9)
    await store.insert_portal_link(link, key_hash(link.id))
    day = 86400.0
    old = portal_session(link, created_at=1000.0, expires_at=2000.0)
    live = portal_session(link, created_at=1000.0, expires_at=1e8)
    for name, session in (("old", old), ("live", live)):
        await store.open_portal_session(key_hash(link.id), key_hash(name), opening(session))
    new = portal_session(link, created_at=2000.0 + 30 * day, expires_at=1e8)
    await store.open_portal_session(key_hash(link.id), key_hash("new"), opening(new))
    with pytest.raises(NotFoundError):
        await peer.get_portal_session(key_hash("old"))
    assert await peer.get_portal_session(key_hash("live")) == (live, link)
    assert await peer.get_portal_session(key_hash("new")) == (new, link)
