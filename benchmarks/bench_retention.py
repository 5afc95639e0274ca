"""The retention scenario of benchmarks/bench.py: accept → delivered latency, pruning off and on.

Issue 18's target: pruning under load raises the accept → delivered p99 by at most 20 %. Each
configuration runs on a fresh daemon (and, on PostgreSQL, a fresh database) that differs from
the other in one setting only: ``off`` keeps everything (retention.period 0), ``on`` prunes.
The comparison is made on two paths, reported apart:

- Rows (every store; the scenario's top-level figures). ``on`` prunes what is older than a
  short period (seconds), so every run deletes rows: on PostgreSQL a period under a day prunes
  row by row, as SQLite always does. Both run retention every second (interval 1), so the
  store size gauge is as fresh in one as in the other. The steady load runs first for the
  warm-up, the period plus a few seconds, so that in ``on`` the first events have aged past
  the period and every run of the window prunes a second's worth.
- Days (PostgreSQL only; under ``days``). With a production period (a day or more) PostgreSQL
  drops whole day partitions instead (store/pg_retention.py). Before each daemon starts, its
  fresh database is filled with old days of ended events (each event one SUCCESS delivery
  after one attempt), made as that day's ingest made them; ``on`` keeps two days, so those
  days are dropped, ``off`` keeps everything. A daemon's first retention run comes one
  interval after it starts (retention.py, ``_loop``), so the interval is the warm-up plus a
  margin: the first run, which drops the days, falls early in the window, and the next ones
  (every interval) retry a day whose tables were too busy to lock.

The load is bench.py's ``offer`` at the latency scenario's rate (1,000 events/s), ~1 KiB events,
one endpoint on the bench's receiver. That rate was set for a machine whose yardstick (bench.py,
run at the start) does YARDSTICK_REFERENCE deliveries a second; on a slower phase of this shared
VM (yardsticks from 3,000 to 12,800/s have been seen) it is scaled down in proportion, so that
``off`` keeps the same headroom: a daemon offered more than it can deliver queues, and its p99
is then the queue's age, not a latency that pruning could raise by a measurable 20 %. The rate
used is in the report's setup, beside the yardstick it came from (a smoke run keeps its rate).
After the warm-up the receiver's figures are reset and the window is measured; a run of ``on``
in which nothing was pruned inside the window (rows) or no partition was dropped inside it
(days) is an error, as the comparison would measure nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import bench
from benchmarks.bench import Daemon, cpu_seconds, offer, receiver_stats, wait_count
from convoyd.client import Client
from convoyd.core.ids import new_id
from convoyd.core.model import Attempt, AttemptResult, Delivery, DeliveryStatus, Endpoint, Event
from convoyd.settings import PostgresSettings
from convoyd.store.base import AttemptRecord, IngestNeeds, IngestSnapshot, IngestWrite
from convoyd.store.pg import PostgresStore
from convoyd.store.pg_schema import DAY, PARTITIONED, day_start, partition_ddl
from convoyd.v1 import endpoint_pb2 as pb
from tests.store.contract_data import endpoint

if TYPE_CHECKING:
    from benchmarks.pgbench_support import BenchPostgres

P99_RATIO_TARGET = 1.20  # p99 with pruning over p99 without
# The yardstick's deliveries per second on the machine the latency rate was chosen for (the
# README's benchmark section: 10,934 and 11,210/s); a slower machine is offered less.
YARDSTICK_REFERENCE = 10_000
INTERVAL = 1  # seconds between retention runs of the rows path, in both configurations
CONFIGS = ("off", "on")
PRUNED_EVENTS = 'convoyd_retention_pruned_total{kind="events"}'
PARTITIONS_DROPPED = "convoyd_retention_partitions_dropped_total"
STORE_SIZE = "convoyd_store_size_bytes"
LAST_RUN_DURATION = "convoyd_retention_last_run_duration_seconds"
# The days path: ``on`` keeps this much (a production-like period, over a day, so PostgreSQL
# prunes by days); the old days filled lie this many days back, well past it and before
# yesterday (a day ensure_partitions would make again is never dropped).
DAYS_PERIOD = 2 * DAY
OLDEST_DAY = 12
# Seconds between the end of the warm-up and the first retention run: long enough for the
# window to have begun (a poll or two of the receiver after the warm-up), short enough that
# the drop lies early in it.
DROP_AFTER_WARM_UP = 2.0
PREFILL_BATCH = 500  # events per store.ingest call (and attempts per store.record call)
PREFILL_WORKERS = (
    3  # concurrent ingest calls: Python builds one batch while the server stores others
)
MAINTENANCE_TIMEOUT = 600.0  # VACUUM and CHECKPOINT of a prefilled day may take a while


@dataclass(frozen=True)
class RetentionSize:
    rate: float  # events offered per second
    period: float  # retention.period of ``on``, seconds
    settle: float  # seconds of warm-up past the period, before the window
    window: float  # seconds measured
    pairs: int  # (off, on) pairs

    @property
    def warm_up(self) -> float:
        return self.period + self.settle


@dataclass(frozen=True)
class DaysSize:
    rate: float  # events offered per second
    days: int  # old days filled before each daemon starts, each dropped whole in ``on``
    events_per_day: int  # ended events (one delivery, one attempt each) per old day
    warm_up: float  # seconds of load before the window
    window: float  # seconds measured
    pairs: int  # (off, on) pairs

    @property
    def interval(self) -> float:
        """retention.interval of both configurations: the first run one interval after
        start comes DROP_AFTER_WARM_UP into the window."""
        return self.warm_up + DROP_AFTER_WARM_UP


FULL = RetentionSize(rate=bench.FULL.latency_rate, period=10, settle=5, window=30, pairs=5)
SMOKE = RetentionSize(rate=bench.SMOKE.latency_rate, period=3, settle=1, window=2, pairs=1)
DAYS_FULL = DaysSize(
    rate=bench.FULL.latency_rate, days=2, events_per_day=200_000, warm_up=5, window=30, pairs=5
)
# The window outlasts the warm-up's end by more than DROP_AFTER_WARM_UP, with room to spare.
DAYS_SMOKE = DaysSize(
    rate=bench.SMOKE.latency_rate, days=2, events_per_day=300, warm_up=1, window=4, pairs=1
)


def order(i: int) -> dict[str, Any]:
    """An ``order.created`` body of about 1 KiB as JSON, the size of a typical webhook: the
    rows pruning removes are as large as a real deployment's, not bench.py's 250 bytes."""
    return {
        "i": i,
        "t": time.time(),
        "type": "order.created",
        "order": {
            "id": f"ord_{i:012d}",
            "status": "created",
            "currency": "EUR",
            "total_cents": 1000 + i % 90_000,
            "customer": {
                "id": f"cus_{i % 10_000:08d}",
                "email": f"customer{i % 10_000}@shop.example",
                "name": "Alexandra Example-Customer",
                "address": {
                    "line1": "1234 Long Street Name",
                    "line2": "Building 5, Floor 6",
                    "city": "Somewhere",
                    "postal_code": "12345",
                    "country": "DE",
                },
            },
            "lines": [
                {
                    "sku": f"SKU-{(i + k) % 5000:06d}",
                    "title": "A product with a descriptive title",
                    "quantity": 1 + k,
                    "unit_cents": 999 + 100 * k,
                }
                for k in range(4)
            ],
            "metadata": {"channel": "web", "campaign": "spring-sale", "note": "x" * 117},
        },
    }


PAYLOAD_BYTES = len(json.dumps(order(0)))


def scrape(daemon: Daemon) -> dict[str, float]:
    """The figures of /metrics this scenario reads, each summed over its series."""
    run = json.loads((daemon.data_dir / "run.json").read_text())
    url = f"http://{run.get('metrics') or run['http']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    out = {}
    for name in (PRUNED_EVENTS, PARTITIONS_DROPPED, STORE_SIZE, LAST_RUN_DURATION):
        # A bare name matches each of its labelled series too (the test suite's reading).
        labels = "" if "{" in name else r"(?:\{[^}]*\})?"
        found = re.findall(rf"^{re.escape(name)}{labels} (\S+)$", text, re.MULTILINE)
        out[name] = sum(float(v) for v in found)
    return out


@contextlib.contextmanager
def _own_files(_: str) -> Iterator[dict[str, str]]:
    """SQLite's store settings: none, the daemon's fresh data dir holds its database."""
    yield {}


@dataclass(frozen=True)
class _Load:
    """What one daemon is given: the rate offered, for the warm-up then the window."""

    rate: float
    warm_up: float
    window: float


async def _window(client: Client, receiver: int, daemon: Daemon, load: _Load) -> dict[str, Any]:
    """The warm-up, then the measured window, on one daemon."""
    ep = await client.create_endpoint(pb.Endpoint(url=f"http://127.0.0.1:{receiver}/retention"))
    targets = {"endpoint_ids": [ep.id]}
    await asyncio.to_thread(receiver_stats, receiver, True)
    warm = await offer(client, load.rate, load.warm_up, targets, data=order)
    # Every warm-up event in before the reset: the window's count is then its own events, and
    # its latencies are of those only. The pause is at most one poll (0.2 s) of no load.
    await wait_count(receiver, warm, daemon, 30)
    before = await asyncio.to_thread(scrape, daemon)
    await asyncio.to_thread(receiver_stats, receiver, True)
    store_cpu = daemon.store_cpu or (lambda: 0.0)
    cpu0, server0 = cpu_seconds(daemon.pids), store_cpu()
    sent = await offer(client, load.rate, load.window, targets, data=order)
    stats = await wait_count(receiver, sent, daemon, 30)
    cpu1, server1 = cpu_seconds(daemon.pids), store_cpu()
    after = await asyncio.to_thread(scrape, daemon)
    per_1000 = 1000 / max(stats["count"], 1)
    result: dict[str, Any] = {
        "sent": sent,
        "delivered": stats["count"],
        **{k: round(stats[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
        "events_pruned_in_window": round(after[PRUNED_EVENTS] - before[PRUNED_EVENTS]),
        "events_pruned": round(after[PRUNED_EVENTS]),
        "partitions_dropped_in_window": round(
            after[PARTITIONS_DROPPED] - before[PARTITIONS_DROPPED]
        ),
        "store_bytes_start": round(before[STORE_SIZE]),
        "store_bytes_end": round(after[STORE_SIZE]),
        "last_run_s": round(after[LAST_RUN_DURATION], 4),
        "cpu_s_per_1000": round((cpu1 - cpu0) * per_1000, 3),
    }
    if daemon.store_cpu is not None:
        result["postgres_cpu_s_per_1000"] = round((server1 - server0) * per_1000, 3)
    return result


async def _measure(
    env: dict[str, str], receiver: int, load: _Load, store_cpu: Callable[[], float] | None
) -> dict[str, Any]:
    """One fresh daemon with ``env`` (its store and retention settings), under ``load``."""
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp) / "data", extra_env=env, store_cpu=store_cpu)
        daemon.start()
        try:
            async with Client(daemon.target, token=daemon.token, timeout=120) as client:
                return await _window(client, receiver, daemon, load)
        finally:
            daemon.stop()


def _retention_env(period: float, interval: float) -> dict[str, str]:
    return {"CONVOYD_RETENTION_PERIOD": str(period), "CONVOYD_RETENTION_INTERVAL": str(interval)}


# -- the rows path ------------------------------------------------------------------------------


async def _run_rows(
    config: str,
    receiver: int,
    size: RetentionSize,
    store_env: dict[str, str],
    store_cpu: Callable[[], float] | None,
) -> dict[str, Any]:
    period = size.period if config == "on" else 0
    env = {**store_env, **_retention_env(period, INTERVAL)}
    load = _Load(rate=size.rate, warm_up=size.warm_up, window=size.window)
    result = await _measure(env, receiver, load, store_cpu)
    if config == "on" and result["events_pruned_in_window"] <= 0:
        raise RuntimeError(
            f"retention pruned no event inside the window (period {period} s): {result}"
        )
    return result


# -- the days path (PostgreSQL) -----------------------------------------------------------------


@dataclass(frozen=True)
class _OldDay:
    """Builds a past day's traffic to one endpoint as the daemon stored it: an event, its one
    delivery (ids made at the event's instant, so in that day's partitions) and the attempt
    that delivered it. Rows are made directly, not through tests.store.contract_data's
    builders: at 100k+ events a day those (each id a seeded Random, each row replaced twice)
    took longer than the server to store them."""

    target: Endpoint
    rng: random.Random
    data: bytes = json.dumps(order(0)).encode()  # ~1 KiB, the window's size

    def write(self, at: float) -> IngestWrite:
        event_id, delivery_id = new_id("ev", at, self.rng), new_id("dl", at, self.rng)
        event = Event(
            id=event_id,
            event_type="order.created",
            data=self.data,
            idempotency_key="",
            endpoint_ids=(self.target.id,),
            owner_id="",
            headers={},
            created_at=at,
            delivery_count=1,
        )
        delivery = Delivery(
            id=delivery_id,
            event_id=event_id,
            endpoint_id=self.target.id,
            owner_id=self.target.spec.owner_id,
            event_type=event.event_type,
            status=DeliveryStatus.SCHEDULED,
            status_reason="",
            attempt_count=0,
            next_attempt_at=at,
            last_attempt_at=None,
            last_http_status=0,
            created_at=at,
            updated_at=at,
        )
        return IngestWrite(event=event, payload_hash=event_id.encode(), deliveries=[delivery])

    def delivered(self, write: IngestWrite) -> AttemptRecord:
        """The first attempt of the write's delivery, a success 20 ms after acceptance."""
        queued = write.deliveries[0]
        sent, took = queued.created_at + 0.02, 0.005
        attempt = Attempt(
            id=new_id("at", sent, self.rng),
            delivery_id=queued.id,
            number=1,
            result=AttemptResult.SUCCESS,
            started_at=sent,
            duration=took,
            request_url=self.target.spec.url,
            request_headers=(
                ("content-type", "application/json"),
                ("webhook-id", write.event.id),
                ("webhook-timestamp", str(int(sent))),
                ("webhook-signature", "v1,[redacted]"),
            ),
            response_status=200,
            response_headers=(("content-type", "application/json"), ("content-length", "11")),
            response_body=b'{"ok":true}',
            response_body_truncated=False,
            error="",
            remote_address="127.0.0.1",
        )
        done = dataclasses.replace(
            queued,
            status=DeliveryStatus.SUCCESS,
            status_reason="HTTP 200",
            attempt_count=1,
            next_attempt_at=None,
            last_attempt_at=sent,
            last_http_status=200,
            updated_at=sent + took,
        )
        return AttemptRecord(attempt=attempt, delivery=done)


def _given(writes: list[IngestWrite]) -> Callable[[IngestSnapshot], list[IngestWrite]]:
    """An ingest build that writes ``writes`` whatever the snapshot (they need none)."""
    return lambda _: writes


async def _fill_day(store: PostgresStore, old: _OldDay, day: float, count: int) -> None:
    """``count`` events spread over the day, each delivered (SUCCESS) by one attempt: ingested
    SCHEDULED, then recorded, as the daemon stored them that day."""
    spacing = DAY / count
    starts = iter(range(0, count, PREFILL_BATCH))  # shared: each worker takes the next batch

    async def worker() -> None:
        for start in starts:
            numbers = range(start, min(start + PREFILL_BATCH, count))
            writes = [old.write(day + (i + 0.5) * spacing) for i in numbers]
            await store.ingest(IngestNeeds(), _given(writes))
            await store.record([old.delivered(w) for w in writes])

    await asyncio.gather(*(worker() for _ in range(PREFILL_WORKERS)))


async def _settle(store: PostgresStore, partitions: Sequence[str]) -> bool:
    """Leaves the filled days as a running server has long since left old days: vacuumed and
    analyzed (autovacuum would otherwise take them on inside the window), and checkpointed
    (the prefill's WAL would otherwise be flushed by a checkpoint inside some window).
    Returns whether the checkpoint was allowed (it needs a superuser, or pg_checkpoint)."""
    async with store._db.pool.acquire() as conn:  # the store's pool: its DSN and settings
        await conn.execute(f"VACUUM (ANALYZE) {', '.join(partitions)}", timeout=MAINTENANCE_TIMEOUT)
        try:
            await conn.execute("CHECKPOINT", timeout=MAINTENANCE_TIMEOUT)
        except asyncpg.InsufficientPrivilegeError:
            return False
    return True


async def _prefill(dsn: str, size: DaysSize, now: float) -> dict[str, Any]:
    """Fills the fresh database ``dsn`` with ``size.days`` old days of ended events (module
    docstring), through a convoyd store of its own; returns what it made and how long it took.
    Each day gets its three partitions alone (as its own day's ensure_partitions made them),
    so that ``on`` drops exactly 3 per day."""
    t0 = time.monotonic()
    store = PostgresStore(PostgresSettings(dsn=dsn))
    await store.open()  # the schema, as the daemon will find it
    try:
        target = endpoint()  # an https://hooks.invalid URL: nothing is ever sent to it
        await store.insert_endpoint(target)
        old = _OldDay(target, random.Random(size.events_per_day))
        partitions: list[str] = []
        for n in range(size.days):
            day = day_start(now) - (OLDEST_DAY - n) * DAY
            for table, prefix in PARTITIONED:
                name, ddl = partition_ddl(table, prefix, day)
                await store._db.execute(ddl)
                partitions.append(name)
            await _fill_day(store, old, day, size.events_per_day)
        checkpointed = await _settle(store, partitions)
        return {
            "events_prefilled": size.days * size.events_per_day,
            "prefilled_bytes": await store.size_bytes(),
            "prefill_s": round(time.monotonic() - t0, 1),
            "checkpointed": checkpointed,
        }
    finally:
        await store.close()


async def _run_days(
    config: str,
    receiver: int,
    size: DaysSize,
    store_env: dict[str, str],
    store_cpu: Callable[[], float] | None,
) -> dict[str, Any]:
    prefilled = await _prefill(store_env["CONVOYD_POSTGRES_DSN"], size, time.time())
    period = DAYS_PERIOD if config == "on" else 0
    env = {**store_env, **_retention_env(period, size.interval)}
    load = _Load(rate=size.rate, warm_up=size.warm_up, window=size.window)
    result = {**await _measure(env, receiver, load, store_cpu), **prefilled}
    if config == "on" and result["partitions_dropped_in_window"] <= 0:
        raise RuntimeError(
            f"retention dropped no partition inside the window (period {period} s,"
            f" interval {size.interval} s): {result}"
        )
    return result


# -- pairs and figures ---------------------------------------------------------------------------


async def _pairs(
    path: str,
    pairs: int,
    databases: Callable[[str], AbstractContextManager[dict[str, str]]],
    run: Callable[[str, dict[str, str]], Awaitable[dict[str, Any]]],
) -> tuple[dict[str, list[dict[str, Any]]], list[float]]:
    """``pairs`` ABBA pairs of ``run(config, store_env)``, each on a fresh database, after one
    run whose figures are dropped; returns each configuration's runs and each pair's on ÷ off
    p99 ratio.

    A path's first run (on a fresh server, or right after the other path's last database was
    dropped) was often its configuration's slowest: p99s of 199 and 178 ms in one bench, where
    the other ``off`` runs gave 16 to 61 ms. ABBA puts that run on ``off``, which flattered
    ``on``."""
    with databases(f"retention_{path}_warm_up") as store_env:
        result = await run(CONFIGS[0], store_env)
    print(
        f"  retention {path} [warm-up, {CONFIGS[0]}, not counted]: {json.dumps(result)}",
        file=sys.stderr,
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {config: [] for config in CONFIGS}
    ratios = []
    for pair in range(pairs):
        order_of_pair = CONFIGS if pair % 2 == 0 else CONFIGS[::-1]
        for config in order_of_pair:
            with databases(f"retention_{path}_{config}_{pair + 1}") as store_env:
                result = await run(config, store_env)
            runs[config].append(result)
            print(
                f"  retention {path} [pair {pair + 1}, {config}]: {json.dumps(result)}",
                file=sys.stderr,
                flush=True,
            )
        ratios.append(runs["on"][-1]["p99_ms"] / max(runs["off"][-1]["p99_ms"], 1e-9))
    return runs, ratios


def _medians(runs: list[dict[str, Any]], per_run: Sequence[str]) -> dict[str, Any]:
    """One configuration's runs: the medians of its figures, each run's p99 and each run's
    ``per_run`` figures."""
    keys = ("p50_ms", "p95_ms", "p99_ms", "cpu_s_per_1000", "postgres_cpu_s_per_1000")
    out: dict[str, Any] = {
        key: round(statistics.median(run[key] for run in runs), 3 if "cpu" in key else 2)
        for key in keys
        if key in runs[0]
    }
    last = runs[-1]
    return {
        **out,
        "p99_ms_runs": [run["p99_ms"] for run in runs],
        "delivered_of_sent": round(
            sum(run["delivered"] for run in runs) / max(sum(run["sent"] for run in runs), 1), 4
        ),
        **{key: [run[key] for run in runs] for key in per_run},
        # The last run's store, at the start and the end of its window: bounded with pruning,
        # growing by the window's events without.
        "store_bytes_start": last["store_bytes_start"],
        "store_bytes_end": last["store_bytes_end"],
        "last_run_s": last["last_run_s"],
    }


def _report(
    setup: dict[str, Any],
    runs: dict[str, list[dict[str, Any]]],
    ratios: list[float],
    per_run: Sequence[str],
    *,
    smoke: bool,
) -> dict[str, Any]:
    ratio = round(statistics.median(ratios), 3)
    return {
        "setup": setup,
        **{config: _medians(runs[config], per_run) for config in CONFIGS},
        "p99_ratio": {
            "value": ratio,
            "pairs": [round(r, 3) for r in ratios],
            "target_max": P99_RATIO_TARGET,
            # A smoke window holds a hundred deliveries: its p99 is noise, not judged.
            "met": ratio <= P99_RATIO_TARGET if not smoke else None,
        },
    }


def scaled_rate(rate: float, yardstick: float | None) -> float:
    """``rate`` for a machine whose yardstick ran at ``yardstick`` deliveries a second (module
    docstring); unchanged when it is as fast as the reference or faster, or unknown."""
    if not yardstick:
        return rate
    return round(rate * min(1.0, yardstick / YARDSTICK_REFERENCE))


async def _rows(
    receiver: int,
    databases: Callable[[str], AbstractContextManager[dict[str, str]]],
    store_cpu: Callable[[], float] | None,
    *,
    smoke: bool,
    yardstick: float | None,
) -> dict[str, Any]:
    size = SMOKE if smoke else dataclasses.replace(FULL, rate=scaled_rate(FULL.rate, yardstick))

    async def run(config: str, store_env: dict[str, str]) -> dict[str, Any]:
        return await _run_rows(config, receiver, size, store_env, store_cpu)

    runs, ratios = await _pairs("rows", size.pairs, databases, run)
    setup = {
        "path": "rows",
        "offered_per_s": size.rate,
        "yardstick_per_s": None if yardstick is None else round(yardstick),
        "payload_bytes": PAYLOAD_BYTES,
        "period_s": size.period,
        "interval_s": INTERVAL,
        "warm_up_s": size.warm_up,
        "window_s": size.window,
        "pairs": size.pairs,
    }
    return _report(setup, runs, ratios, ("events_pruned_in_window",), smoke=smoke)


async def _days(
    receiver: int,
    postgres: BenchPostgres,
    store_cpu: Callable[[], float] | None,
    *,
    smoke: bool,
    yardstick: float | None,
) -> dict[str, Any]:
    size = (
        DAYS_SMOKE
        if smoke
        else dataclasses.replace(DAYS_FULL, rate=scaled_rate(DAYS_FULL.rate, yardstick))
    )

    async def run(config: str, store_env: dict[str, str]) -> dict[str, Any]:
        return await _run_days(config, receiver, size, store_env, store_cpu)

    runs, ratios = await _pairs("days", size.pairs, postgres.daemon_env, run)
    setup = {
        "path": "days",
        "offered_per_s": size.rate,
        "yardstick_per_s": None if yardstick is None else round(yardstick),
        "payload_bytes": PAYLOAD_BYTES,
        "period_s": DAYS_PERIOD,
        "interval_s": size.interval,
        "old_days": size.days,
        "old_day_events": size.events_per_day,
        "oldest_day_back": OLDEST_DAY,
        # Where the server's files lie: online discard there costs this path its p99.
        "postgres_data_dir": postgres.info.get("data_dir"),
        "warm_up_s": size.warm_up,
        "window_s": size.window,
        "pairs": size.pairs,
    }
    per_run = (
        "events_pruned_in_window",
        "partitions_dropped_in_window",
        "prefill_s",
        "prefilled_bytes",
    )
    report = _report(setup, runs, ratios, per_run, smoke=smoke)
    report["setup"]["checkpointed"] = all(run["checkpointed"] for rs in runs.values() for run in rs)
    return report


async def run_retention(
    receiver: int, postgres: BenchPostgres | None, *, smoke: bool, yardstick: float | None = None
) -> dict[str, Any]:
    """The scenario on SQLite (``postgres`` None) or on a fresh database of ``postgres`` for
    each daemon: the rows path's medians and p99 ratio against its target at the top level, and
    on PostgreSQL the days path's under ``days``. ``yardstick``: the machine's, for the rate."""
    if postgres is None:
        return await _rows(receiver, _own_files, None, smoke=smoke, yardstick=yardstick)
    store_cpu = postgres.cpu_seconds if postgres.postmaster is not None else None
    rows = await _rows(receiver, postgres.daemon_env, store_cpu, smoke=smoke, yardstick=yardstick)
    days = await _days(receiver, postgres, store_cpu, smoke=smoke, yardstick=yardstick)
    return {**rows, "days": days}
