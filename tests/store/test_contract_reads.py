"""The Store contract (store/base.py) for read-your-writes across every kind of write, on the
SQLite and the PostgreSQL store alike (tests/store/conftest.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

import pytest

from convoyd.core.model import DeliveryStatus
from convoyd.store.base import DeliveryQuery, IngestNeeds, Store
from tests.store.contract_data import (
    T0,
    endpoint,
    event_write,
    key_hash,
    opening,
    outcome,
    portal_link,
    portal_session,
)

pytestmark = pytest.mark.both_stores


async def test_every_write_is_seen_by_the_next_read_anywhere(
    store: Store, peers: list[Store]
) -> None:
    """Callers at once, each writing through one store object and reading at once through
    another: a read that starts after a write returned never misses it."""
    stores = [store, *peers]
    misses: Counter[str] = Counter()

    def check(what: str, ok: bool) -> None:
        if not ok:
            misses[what] += 1

    async def round_trip(n: int) -> None:
        w, r = stores[n % len(stores)], stores[(n + 1) % len(stores)]
        ep = endpoint(f"owner-{n}")
        await w.insert_endpoint(ep)
        check("get_endpoint", await r.get_endpoint(ep.id) == ep)
        check("list_endpoints", await r.list_endpoints(owner_id=ep.spec.owner_id) == [ep])
        renamed = await w.modify_endpoint(
            ep.id, lambda e: dataclasses.replace(e, status_reason="renamed")
        )
        check("modify_endpoint", await r.get_endpoint(ep.id) == renamed)

        write = event_write([ep])
        await w.ingest(IngestNeeds(), lambda _: [write])
        d = write.deliveries[0]
        check("get_event", await r.get_event(write.event.id) == write.event)
        listed = await r.list_deliveries(
            DeliveryQuery(event_id=write.event.id), before_id="", limit=5
        )
        check("list_deliveries", listed == [d])
        check("load_payloads", write.event.id in await r.load_payloads([write.event.id]))
        result = outcome(d, 1, DeliveryStatus.FAILURE)
        await w.record([result])
        check("record", await r.get_delivery(d.id) == result.delivery)
        check(
            "list_attempts",
            await r.list_attempts(d.id, after_number=0, limit=5) == [result.attempt],
        )
        edited = await w.modify_delivery(
            d.id, lambda x, e: (dataclasses.replace(x, status_reason="edited"), e)
        )
        check("modify_delivery", await r.get_delivery(d.id) == edited)
        query = DeliveryQuery(event_id=write.event.id)
        (again,) = await w.reschedule_deliveries(query, now=T0, reason="again", limit=5)
        check("reschedule_deliveries", await r.get_delivery(d.id) == again)

        link = portal_link(owner_id=ep.spec.owner_id)
        await w.insert_portal_link(link, key_hash(link.id))
        check("get_portal_link", await r.get_portal_link(link.id) == link)
        session = portal_session(link, created_at=1000.0, expires_at=50_000.0)
        await w.open_portal_session(key_hash(link.id), key_hash(session.id), opening(session))
        check(
            "open_portal_session",
            await r.get_portal_session(key_hash(session.id)) == (session, link),
        )
        await w.end_portal_session(key_hash(session.id), now=1100.0)
        ended, _ = await r.get_portal_session(key_hash(session.id))
        check("end_portal_session", ended.revoked_at == 1100.0)
        revoked = await w.modify_portal_link(
            link.id, lambda x: dataclasses.replace(x, revoked_at=1200.0)
        )
        check("modify_portal_link", await r.get_portal_link(link.id) == revoked)

        await w.delete_endpoint(ep.id)
        check("delete_endpoint", await r.list_endpoints(owner_id=ep.spec.owner_id) == [])
        check("delete_endpoint deliveries", await r.count_deliveries(query) == 0)

    async def caller(first: int) -> None:
        for n in range(first, 24, 4):
            await round_trip(n)

    await asyncio.gather(*(caller(c) for c in range(4)))
    assert dict(misses) == {}
