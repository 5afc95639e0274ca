"""The retention loop (convoyd/retention.py): what a run counts and reports, on a real SQLite
store, and what a run that the store stops half-way leaves behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from prometheus_client import CollectorRegistry

from convoyd.core.model import DeliveryStatus
from convoyd.errors import UnavailableError
from convoyd.metrics import Metrics
from convoyd.retention import Retention
from convoyd.settings import RetentionSettings
from convoyd.store.base import EventQuery, IngestNeeds, Pruned
from convoyd.store.sqlite import SqliteStore
from tests.store.contract_data import T0, endpoint, event_write, outcome

LATER = T0 + 3600.0


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def old_events(store: SqliteStore, count: int) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    writes = [event_write([ep]) for _ in range(count)]
    await store.ingest(IngestNeeds(), lambda _: writes)
    await store.record(
        [outcome(w.deliveries[0], 1, DeliveryStatus.SUCCESS, http=200) for w in writes]
    )


async def test_a_run_counts_what_went_and_when_it_ended(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        await old_events(store, 5)
        metrics = Metrics(CollectorRegistry(), process=False)
        retention = Retention(
            store,
            settings=lambda: RetentionSettings(period=60, interval=1),
            clock=lambda: LATER,
            metrics=metrics,
            batch=2,
        )

        assert await retention.run_once() == Pruned(events=5, deliveries=5, attempts=5)
        await retention.measure()
    finally:
        await store.close()

    for kind in ("events", "deliveries", "attempts"):
        assert sample(metrics, "convoyd_retention_pruned_total", kind=kind) == 5
    assert sample(metrics, "convoyd_retention_last_run_timestamp_seconds") == LATER
    assert sample(metrics, "convoyd_store_size_bytes") > 0
    assert retention.runs == 1


async def test_a_zero_period_prunes_nothing_but_still_completes_runs(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        await old_events(store, 3)
        retention = Retention(
            store, settings=lambda: RetentionSettings(period=0), clock=lambda: LATER
        )
        assert await retention.run_once() == Pruned()
        assert retention.runs == 1
        assert len(await store.list_events(EventQuery(), before_id="", limit=10)) == 3
    finally:
        await store.close()


class StopsHalfWay:
    """A store whose pruning yields one step and then loses its database."""

    def prune(self, *, now: float, period: float, batch: int) -> AsyncIterator[Pruned]:
        async def steps() -> AsyncIterator[Pruned]:
            yield Pruned(events=2, deliveries=2)
            raise UnavailableError("the database is unavailable")

        return steps()


async def test_a_run_the_store_stops_keeps_its_count_but_not_its_end_time() -> None:
    metrics = Metrics(CollectorRegistry(), process=False)
    retention = Retention(
        StopsHalfWay(),  # type: ignore[arg-type]
        settings=lambda: RetentionSettings(period=60),
        clock=lambda: LATER,
        metrics=metrics,
    )

    assert await retention.run_once() == Pruned(events=2, deliveries=2)

    assert sample(metrics, "convoyd_retention_pruned_total", kind="events") == 2
    assert sample(metrics, "convoyd_retention_last_run_timestamp_seconds") == 0
    assert retention.runs == 0


class DropsThenDeletes:
    """A store whose pruning drops two partitions, then deletes rows."""

    def prune(self, *, now: float, period: float, batch: int) -> AsyncIterator[Pruned]:
        async def steps() -> AsyncIterator[Pruned]:
            yield Pruned(partitions=1, deliveries=100)
            yield Pruned(partitions=1, attempts=100)
            yield Pruned(events=3, deliveries=3)

        return steps()


async def test_partition_drops_are_spaced_by_the_drop_rest_and_row_steps_by_the_pace() -> None:
    rests: list[float] = []

    async def sleep(seconds: float) -> None:
        rests.append(seconds)

    ticks = iter(range(100))  # every step takes 1 s of this clock
    retention = Retention(
        DropsThenDeletes(),  # type: ignore[arg-type]
        settings=lambda: RetentionSettings(period=60),
        clock=lambda: LATER,
        pace=0.5,
        drop_rest=4.0,
        monotonic=lambda: float(next(ticks)),
        sleep=sleep,
    )

    assert await retention.run_once() == Pruned(
        partitions=2, events=3, deliveries=103, attempts=100
    )
    assert rests == [4.0, 4.0, 0.5]
