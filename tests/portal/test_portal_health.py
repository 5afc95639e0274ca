"""portal/health.py on a real store (both stores): the endpoint page's health card and the
list's sparklines say what record() stored, each page from one read of the counters."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from convoyd.core.health import HOUR, HealthHour
from convoyd.core.model import AttemptResult, DeliveryStatus, Endpoint
from convoyd.portal import health
from convoyd.store.base import AttemptRecord, IngestNeeds, Store
from convoyd.store.factory import make_store
from tests.conftest import loopback_settings
from tests.store.contract_data import endpoint, event_write, outcome

pytestmark = pytest.mark.both_stores

NOW = 1_780_000_000.0  # Thursday 2026-05-28 20:26:40 UTC
NBSP = "\u00a0"


class Counting:
    """The store, counting the reads of its health counters."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0
        self.latency = True

    async def health_hours(
        self, endpoint_ids: Sequence[str], *, since: float, until: float, latency: bool = True
    ) -> list[HealthHour]:
        self.reads += 1
        self.latency = latency
        return await self.store.health_hours(
            endpoint_ids, since=since, until=until, latency=latency
        )


@pytest.fixture
async def store(store_backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    opened = make_store(loopback_settings(tmp_path))
    await opened.open()
    yield opened
    await opened.close()


async def attempts(store: Store, ep: Endpoint, *ago_ok: tuple[float, bool]) -> None:
    """One delivery and attempt of ``ep`` per (seconds before NOW, succeeded)."""
    writes = [event_write([ep]) for _ in ago_ok]
    await store.ingest(IngestNeeds(), lambda _: writes)
    records = []
    for w, (ago, ok) in zip(writes, ago_ok, strict=True):
        r = outcome(w.deliveries[0], 1, DeliveryStatus.SUCCESS if ok else DeliveryStatus.RETRY)
        assert r.attempt is not None
        attempt = dataclasses.replace(
            r.attempt,
            started_at=NOW - ago,
            duration=0.120,
            result=AttemptResult.SUCCESS if ok else AttemptResult.HTTP_ERROR,
        )
        records.append(AttemptRecord(attempt=attempt, delivery=r.delivery))
    await store.record(records)


async def test_the_endpoint_card_shows_the_day_and_the_week_from_one_read(store: Store) -> None:
    a, b = endpoint(), endpoint()
    for ep in (a, b):
        await store.insert_endpoint(ep)
    await attempts(
        store,
        a,
        (10, True),  # this hour
        (60, True),
        (3 * HOUR, False),
        (23 * HOUR, True),  # the first of the 24 hourly bars (21:00 yesterday to 20:00)
        (25 * HOUR, True),  # before it: only in the week
        (6.5 * 24 * HOUR, False),  # the week's first 6-hour bar
        (8 * 24 * HOUR, True),  # before the week
    )
    await attempts(store, b, (10, False))
    source = Counting(store)
    card = await health.endpoint_health(source, a.id, NOW)
    assert source.reads == 1
    summaries = re.findall(r'<p class="health-summary">([^<]*)</p>', card)
    assert summaries == [
        f"3 ok, 1 failed (75.0{NBSP}% ok); response time p50 125 ms, p95 148 ms",
        f"4 ok, 2 failed (66.6{NBSP}% ok); response time p50 125 ms, p95 148 ms",
    ]
    assert "<title>28 May 20:00-21:00 UTC: 2 ok, 0 failed</title>" in card
    assert "<title>28 May 17:00-18:00 UTC: 0 ok, 1 failed</title>" in card


async def test_the_list_gets_a_sparkline_per_endpoint_from_one_read(store: Store) -> None:
    a, b, idle = endpoint(), endpoint(), endpoint()
    for ep in (a, b, idle):
        await store.insert_endpoint(ep)
    await attempts(store, a, (10, True), (2 * HOUR, True), (2 * HOUR, False))
    await attempts(store, b, (30 * HOUR, True))  # older than the sparkline's 24 hours
    source = Counting(store)
    lines = await health.sparklines(source, [a.id, b.id, idle.id], NOW)
    assert source.reads == 1
    assert source.latency is False  # a sparkline shows counts only: they alone are read
    assert list(lines) == [a.id, b.id, idle.id]
    assert f'<span class="sparkline-text">66.6{NBSP}% ok</span>' in lines[a.id]
    assert f'aria-label="Last 24 hours: 2 ok, 1 failed (66.6{NBSP}% ok)"' in lines[a.id]
    for quiet in (b.id, idle.id):
        assert '<span class="sparkline-text">no attempts</span>' in lines[quiet]
    assert await health.sparklines(source, [], NOW) == {}
    assert source.reads == 1  # nothing to read for no endpoints
