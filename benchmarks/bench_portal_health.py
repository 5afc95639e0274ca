"""The portal's delivery health with a big store: the endpoint page's query and card, the list's
sparklines, and what counting costs the hot path (issue 21, "Health at a glance").

    .venv/bin/python benchmarks/bench_portal_health.py                  # SQLite, 1,000,000
    .venv/bin/python benchmarks/bench_portal_health.py --store postgres
    .venv/bin/python benchmarks/bench_portal_health.py --smoke --store both

A fresh store (SQLite in a temporary data dir; PostgreSQL on a fresh database of one server,
benchmarks/pgbench_support.py, durable as an operator runs it) is filled through the Store API
as the daemon fills it: ``ingest`` of events (each to 10 of the endpoints), then ``record`` of
one attempt per delivery in batches of 1,000 (as the recorder writes them), so the health
counters are made by the real record path. Events are spread over the last 7 days (about 5 %
of attempts fail, some endpoints much more; response times log-normal), in time order.

Then, each measured ``repeats`` times on the filled store (median and p95, milliseconds):

- ``query_ms``: the endpoint page's one read (Store.health_hours: 7 days of one endpoint);
- ``section_ms``: portal/health.endpoint_health, that read and the whole card rendered;
- ``sparklines_ms``: portal/health.sparklines for ``endpoints`` endpoints (the list's page).

``page_target_ms`` (100) is the issue's budget for the page; ``met`` says whether the card's and
the sparklines' medians each stay under it. ``overhead`` measures the hot path: the same batches
(the attempts of one minute, as a live load makes them) recorded on fresh stores with the
counters and without them (the counting taken out by
replacing it, in this process only), in ABBA order: per 1,000 records the wall and CPU
milliseconds (and PostgreSQL's own CPU), and each figure's median with over without.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from convoyd.core.health import HOUR
from convoyd.core.ids import new_id
from convoyd.core.model import Attempt, AttemptResult, Delivery, DeliveryStatus, Endpoint, Event
from convoyd.portal import health
from convoyd.settings import PostgresSettings
from convoyd.store import health_sql, pg_events, pg_health
from convoyd.store.base import AttemptRecord, IngestNeeds, IngestWrite, Store
from convoyd.store.pg import PostgresStore
from convoyd.store.pg_schema import DAY, PARTITIONED, day_start, partition_ddl
from convoyd.store.sqlite import SqliteStore
from tests.store.contract_data import endpoint

PAGE_TARGET_MS = 100.0
FAN_OUT = 10  # deliveries per event
INGEST_EVENTS = 200  # events per ingest call
RECORD_BATCH = 1000  # attempts per record call, as a busy recorder's batch
WEEK = 7 * DAY


@dataclass(frozen=True)
class Size:
    deliveries: int
    endpoints: int
    repeats: int
    overhead_deliveries: int
    overhead_pairs: int


FULL = Size(
    deliveries=1_000_000,
    endpoints=50,
    repeats=100,
    overhead_deliveries=30_000,
    overhead_pairs=3,
)
SMOKE = Size(deliveries=2_000, endpoints=10, repeats=5, overhead_deliveries=1_000, overhead_pairs=1)


class Traffic:
    """Events to the endpoints over the last week, and their attempts, made reproducibly."""

    def __init__(self, endpoints: list[Endpoint], now: float, seed: int = 21) -> None:
        self.endpoints = endpoints
        self.now = now
        self.rng = random.Random(seed)
        # A few endpoints fail often; the others about 2 % of the time.
        self.failure = {ep.id: 0.3 if n % 10 == 3 else 0.02 for n, ep in enumerate(endpoints)}

    def events(self, count: int, span: float = WEEK) -> Iterator[IngestWrite]:
        """``count`` events in time order over the ``span`` seconds before now."""
        times = sorted(self.now - span * self.rng.random() for _ in range(count))
        n = len(self.endpoints)
        for i, at in enumerate(times):
            targets = [self.endpoints[(i + k) % n] for k in range(min(FAN_OUT, n))]
            yield self._event(at, targets)

    def _event(self, at: float, targets: list[Endpoint]) -> IngestWrite:
        ev = Event(
            id=new_id("ev", at, self.rng),
            event_type="order.paid",
            data=b'{"order":"o-1","total":12}',
            idempotency_key="",
            endpoint_ids=tuple(t.id for t in targets),
            owner_id="",
            headers={},
            created_at=at,
            delivery_count=len(targets),
        )
        deliveries = [
            Delivery(
                id=new_id("dl", at, self.rng),
                event_id=ev.id,
                endpoint_id=t.id,
                owner_id=t.spec.owner_id,
                event_type=ev.event_type,
                status=DeliveryStatus.SCHEDULED,
                status_reason="",
                attempt_count=0,
                next_attempt_at=at,
                last_attempt_at=None,
                last_http_status=0,
                created_at=at,
                updated_at=at,
            )
            for t in targets
        ]
        return IngestWrite(event=ev, payload_hash=ev.id.encode(), deliveries=deliveries)

    def attempt(self, d: Delivery) -> AttemptRecord:
        """The delivery's one attempt, a moment after it was made, and its outcome."""
        sent = d.created_at + 0.05
        failed = self.rng.random() < self.failure[d.endpoint_id]
        took = min(59.0, self.rng.lognormvariate(-2.3, 0.9))
        status = 500 if failed else 200
        attempt = Attempt(
            id=new_id("at", sent, self.rng),
            delivery_id=d.id,
            number=1,
            result=AttemptResult.HTTP_ERROR if failed else AttemptResult.SUCCESS,
            started_at=sent,
            duration=took,
            request_url="https://hooks.invalid/in",
            request_headers=(("content-type", "application/json"), ("webhook-id", d.id)),
            response_status=status,
            response_headers=(("content-type", "application/json"),),
            response_body=b'{"ok":false}' if failed else b'{"ok":true}',
            response_body_truncated=False,
            error="",
            remote_address="127.0.0.1",
        )
        done = dataclasses.replace(
            d,
            status=DeliveryStatus.FAILURE if failed else DeliveryStatus.SUCCESS,
            status_reason=f"HTTP {status}",
            attempt_count=1,
            next_attempt_at=None,
            last_attempt_at=sent,
            last_http_status=status,
            updated_at=sent + took,
        )
        return AttemptRecord(attempt=attempt, delivery=done)


async def fill(store: Store, traffic: Traffic, deliveries: int, workers: int) -> dict[str, Any]:
    """Ingests and records ``deliveries`` (module docstring); returns how long each took."""
    events = traffic.events(max(1, deliveries // FAN_OUT))
    lock = asyncio.Lock()
    spent = {"ingest_s": 0.0, "record_s": 0.0}

    async def worker() -> None:
        while True:
            async with lock:  # one generator shared by the workers
                writes = [w for _, w in zip(range(INGEST_EVENTS), events, strict=False)]
            if not writes:
                return
            t0 = time.perf_counter()
            await store.ingest(IngestNeeds(), lambda _, w=writes: w)  # type: ignore[misc]
            t1 = time.perf_counter()
            records = [traffic.attempt(d) for w in writes for d in w.deliveries]
            t2 = time.perf_counter()
            for start in range(0, len(records), RECORD_BATCH):
                await store.record(records[start : start + RECORD_BATCH])
            t3 = time.perf_counter()
            spent["ingest_s"] += t1 - t0
            spent["record_s"] += t3 - t2

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return {
        "fill_s": round(time.perf_counter() - t0, 1),
        **{k: round(v, 1) for k, v in spent.items()},
    }


async def timed(call: Callable[[], Awaitable[object]], repeats: int) -> dict[str, float]:
    await call()  # warm: statement caches, pages in memory
    took = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        await call()
        took.append((time.perf_counter() - t0) * 1000)
    took.sort()
    return {
        "median": round(statistics.median(took), 2),
        "p95": round(took[min(len(took) - 1, int(0.95 * len(took)))], 2),
    }


async def measure(
    store: Store, endpoints: list[Endpoint], now: float, repeats: int
) -> dict[str, Any]:
    one = endpoints[3].id  # one of the often failing ones: every bar has both colours
    ids = [ep.id for ep in endpoints]
    since = (now // (6 * HOUR)) * 6 * HOUR - 27 * 6 * HOUR
    hours = await store.health_hours([one], since=since, until=now + HOUR)
    return {
        "hours_read": len(hours),
        "query_ms": await timed(
            lambda: store.health_hours([one], since=since, until=now + HOUR), repeats
        ),
        "section_ms": await timed(lambda: health.endpoint_health(store, one, now), repeats),
        "sparklines_endpoints": len(ids),
        "sparklines_ms": await timed(lambda: health.sparklines(store, ids, now), repeats),
        "section_bytes": len(await health.endpoint_health(store, one, now)),
    }


# -- stores ---------------------------------------------------------------------------------


class Stores:
    """Fresh stores of one kind: SQLite data dirs, or databases on one PostgreSQL server."""

    def __init__(self, kind: str, pg: Any = None) -> None:
        self.kind = kind
        self.pg = pg
        self._made = 0

    def server_cpu(self) -> float | None:
        """PostgreSQL's CPU seconds so far; None for SQLite or a server not measurable."""
        if self.pg is None or self.pg.postmaster is None:
            return None
        return float(self.pg.cpu_seconds())

    @contextlib.asynccontextmanager
    async def fresh(self, now: float) -> AsyncIterator[Store]:
        self._made += 1
        if self.kind == "sqlite":
            with tempfile.TemporaryDirectory(prefix="convoyd-bench-health-") as tmp:
                store: Store = SqliteStore(Path(tmp))
                await store.open()
                try:
                    yield store
                finally:
                    await store.close()
            return
        name = f"bench_health_{self._made}"
        dsn = self.pg.server.create_database(name)
        try:
            pg_store = PostgresStore(PostgresSettings(dsn=dsn, pool_size=8))
            await pg_store.open()
            try:
                # The past week's day partitions, as a daemon running all week made them.
                for n in range(9):
                    for table, prefix in PARTITIONED:
                        _, ddl = partition_ddl(table, prefix, day_start(now) - n * DAY)
                        await pg_store._db.execute(ddl)
                yield pg_store
            finally:
                await pg_store.close()
        finally:
            self.pg.server.drop_database(name)


@contextlib.contextmanager
def counting_off(kind: str) -> Iterator[None]:
    """record() without the health counters, in this process (the ``overhead`` comparison)."""
    if kind == "sqlite":
        saved = health_sql.Counted, health_sql.insert_counted
        health_sql.Counted = lambda batch, rows: None  # type: ignore[assignment,misc]
        health_sql.insert_counted = lambda conn, counted, insert: insert()  # type: ignore[assignment]
        try:
            yield
        finally:
            health_sql.Counted, health_sql.insert_counted = saved  # type: ignore[misc]
        return
    saved_plain, saved_fenced = pg_events._RECORD, pg_events._RECORD_FENCED
    pg_events._RECORD = saved_plain.replace(pg_health.COUNT_INSERTED, " SELECT 1")
    pg_events._RECORD_FENCED = saved_fenced.replace(pg_health.COUNT_INSERTED, " SELECT 1")
    try:
        yield
    finally:
        pg_events._RECORD, pg_events._RECORD_FENCED = saved_plain, saved_fenced


async def record_run(stores: Stores, size: Size, now: float, counting: bool) -> dict[str, float]:
    """Per 1,000 records, the batches recorded one after another (as one recorder does):
    wall milliseconds, this process' CPU milliseconds (SQLite's writer thread included), and
    on PostgreSQL the server's CPU milliseconds (when its processes can be read)."""
    async with stores.fresh(now) as store:
        endpoints = [endpoint() for _ in range(size.endpoints)]
        for ep in endpoints:
            await store.insert_endpoint(ep)
        traffic = Traffic(endpoints, now, seed=5)
        # As a live load: the attempts of the last minute, so a batch spans one hour at most.
        writes = list(traffic.events(max(1, size.overhead_deliveries // FAN_OUT), span=60.0))
        for start in range(0, len(writes), INGEST_EVENTS):
            part = writes[start : start + INGEST_EVENTS]
            await store.ingest(IngestNeeds(), lambda _, w=part: w)  # type: ignore[misc]
        records = [traffic.attempt(d) for w in writes for d in w.deliveries]
        if isinstance(store, PostgresStore):
            # Statistics as autovacuum keeps them on a running server. A fresh table has none,
            # and the planner's guess then prices record()'s statement with the counters above
            # jit_above_cost: JIT compiling it costs more than running it (docs/portal.md).
            await store._db.execute("ANALYZE")
        server = stores.server_cpu()
        with contextlib.nullcontext() if counting else counting_off(stores.kind):
            t0, c0 = time.perf_counter(), time.process_time()
            for start in range(0, len(records), RECORD_BATCH):
                await store.record(records[start : start + RECORD_BATCH])
            took, cpu = time.perf_counter() - t0, time.process_time() - c0
        server = None if server is None else stores.server_cpu() - server  # type: ignore[operator]
        counted = await store.health_hours([endpoints[0].id], since=0.0, until=now + HOUR)
        assert bool(counted) is counting, "the counters must be on or off as configured"
        per = 1_000_000 / len(records)  # seconds per record -> milliseconds per 1,000
        out = {"wall_ms": round(took * per, 2), "cpu_ms": round(cpu * per, 2)}
        if server is not None:
            out["server_cpu_ms"] = round(server * per, 2)
        return out


async def overhead(stores: Stores, size: Size, now: float) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    for _ in range(size.overhead_pairs):
        for config in ("on", "off", "off", "on"):  # ABBA: drift favours neither
            runs[config].append(await record_run(stores, size, now, config == "on"))
    out: dict[str, Any] = {"records": size.overhead_deliveries, "per_1000_records": runs}
    for figure in runs["on"][0]:
        on = statistics.median(r[figure] for r in runs["on"])
        off = statistics.median(r[figure] for r in runs["off"])
        out[f"{figure}_on_over_off"] = round(on / off, 3) if off else None
    return out


async def run_store(stores: Stores, size: Size) -> dict[str, Any]:
    now = time.time()
    out: dict[str, Any] = {}
    async with stores.fresh(now) as store:
        endpoints = [endpoint() for _ in range(size.endpoints)]
        for ep in endpoints:
            await store.insert_endpoint(ep)
        workers = 2 if stores.kind == "sqlite" else 3
        out["deliveries"] = size.deliveries
        out["endpoints"] = size.endpoints
        out.update(await fill(store, Traffic(endpoints, now), size.deliveries, workers))
        out["store_bytes"] = await store.size_bytes()
        out.update(await measure(store, endpoints, now, size.repeats))
    out["page_target_ms"] = PAGE_TARGET_MS
    out["met"] = (
        out["section_ms"]["median"] < PAGE_TARGET_MS
        and out["sparklines_ms"]["median"] < PAGE_TARGET_MS
    )
    out["overhead"] = await overhead(stores, size, now)
    return out


async def run_all(size: Size, kinds: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"size": dataclasses.asdict(size)}
    for kind in kinds:
        if kind == "sqlite":
            results["sqlite"] = await run_store(Stores("sqlite"), size)
            continue
        from benchmarks.pgbench_support import BenchPostgres

        pg = BenchPostgres().start()
        try:
            results["postgres"] = await run_store(Stores("postgres", pg), size)
            results["postgres"]["server"] = pg.info
        finally:
            pg.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--deliveries", type=int, help="deliveries to fill (default 1,000,000)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    size = SMOKE if args.smoke else FULL
    if args.deliveries is not None:
        if args.deliveries < FAN_OUT:
            parser.error(f"--deliveries: at least {FAN_OUT}")
        size = dataclasses.replace(size, deliveries=args.deliveries)
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = asyncio.run(run_all(size, kinds))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
