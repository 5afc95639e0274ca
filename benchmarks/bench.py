"""convoyd's benchmark: the real daemon, a fast receiver and a gRPC load generator, on loopback.

    make bench                      # every scenario, full size (several minutes)
    .venv/bin/python benchmarks/bench.py --smoke    # tiny sizes: keeps the harness working
    .venv/bin/python benchmarks/bench.py --store both   # SQLite and PostgreSQL side by side

Prints one JSON document and a short table. Each scenario gets a fresh daemon and data dir.
Throughput is measured at the receiver; latency is accept-to-arrival (the load generator puts
its send time in each payload); CPU and peak RSS come from /proc of every convoyd process.

``--store postgres`` runs every scenario on the PostgreSQL store, each on a fresh database of
one server (benchmarks/pgbench_support.py), and adds PostgreSQL's own CPU to (a).
``--postgres-dir DIR`` makes that server's data directory under DIR: put it on the kind of
volume PostgreSQL runs on in production (the report's ``postgres_server.data_dir`` names the file
system and whether it is mounted with online ``discard``, which stalls every fsync while a
dropped partition's blocks are trimmed: docs/operations.md, "Retention").
``--nodes 1 2 3`` (with ``--store postgres`` or ``both``) adds the scenario ``cluster``: that many
convoyd nodes on one database, for each count (benchmarks/bench_cluster.py).
``--only retention`` runs the scenario ``retention``: the accept → delivered latency with pruning
off and on, in alternating pairs of fresh daemons (benchmarks/bench_retention.py).
``--only tracing`` runs the scenario ``tracing``: throughput (a) with tracing off and with spans
exported at 1 % and 100 % sampling, as ratios to off (benchmarks/bench_tracing.py).
``--store both`` runs each scenario on SQLite, then on PostgreSQL; each scenario's figures are
then keyed by store (``results["a_throughput"]["postgres"]``), and ``postgres_over_sqlite``
and ``postgres_targets`` compare them. With one store the layout is flat, as it always was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from convoyd.client import Client, event_request
from convoyd.v1 import endpoint_pb2 as pb
from convoyd.v1 import event_pb2

if TYPE_CHECKING:
    from benchmarks.pgbench_support import BenchPostgres

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")
STORES = {"sqlite": ("sqlite",), "postgres": ("postgres",), "both": ("sqlite", "postgres")}
CLUSTER = "cluster"  # several nodes on one PostgreSQL: benchmarks/bench_cluster.py
RETENTION = "retention"  # latency with pruning off and on: benchmarks/bench_retention.py
TRACING = "tracing"  # throughput with tracing off and on: benchmarks/bench_tracing.py


def receiver_stats(port: int, reset: bool = False) -> dict[str, Any]:
    path = "reset" if reset else "stats"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{path}", method="POST" if reset else "GET"
    )
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - loopback only
        body = reply.read()
    return json.loads(body) if body else {}


def pids_of(root_pid: int) -> list[int]:
    """The daemon and every child it started (sender workers, if any)."""
    out = [root_pid]
    for pid in list(out):
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        out.extend(int(c) for c in children)
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def rss_mb(pids: list[int], key: str = "VmRSS") -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


@dataclass
class Daemon:
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    target: str = ""
    token: str = ""
    peak_rss: float = 0.0
    extra_env: dict[str, str] = field(default_factory=dict)
    # CPU seconds used so far by a store server outside the daemon (PostgreSQL), if any.
    store_cpu: Callable[[], float] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOYD_")}
        # BENCH_CONVOYD_X=... sets the daemon's CONVOYD_X, e.g.
        # BENCH_CONVOYD_DELIVERY_SENDER_WORKERS=2.
        env.update(
            {k[len("BENCH_") :]: v for k, v in os.environ.items() if k.startswith("BENCH_CONVOYD_")}
        )
        env.update(
            CONVOYD_DATA_DIR=str(self.data_dir),
            CONVOYD_GRPC_LISTEN="127.0.0.1:0",
            CONVOYD_HTTP_LISTEN="127.0.0.1:0",
            CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8",
            CONVOYD_LOG_LEVEL="warning",
            **self.extra_env,
        )
        self.proc = subprocess.Popen([PY, "-m", "convoyd.cli", "serve"], env=env, cwd=ROOT)
        run = self.data_dir / "run.json"
        deadline = time.monotonic() + 30
        while not run.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("convoyd did not start")
            time.sleep(0.05)
        self.target = json.loads(run.read_text())["grpc"]
        self.token = (self.data_dir / "admin.token").read_text().strip()

    @property
    def pids(self) -> list[int]:
        assert self.proc is not None
        return pids_of(self.proc.pid)

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, rss_mb(self.pids))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
            self.proc = None


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_count(port: int, count: int, daemon: Daemon, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        stats = await asyncio.to_thread(receiver_stats, port)
        daemon.sample()
        if stats["count"] >= count or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.2)


def payload(i: int) -> dict[str, Any]:
    return {"i": i, "t": time.time(), "type": "order.created", "pad": "x" * 200}


async def offer(
    client: Client,
    rate: float,
    seconds: float,
    targets: dict[str, Any],
    batch: int = 10,
    data: Callable[[int], dict[str, Any]] = payload,
) -> int:
    """Sends ``rate`` events/s for ``seconds`` in small batches, on a fixed schedule; event
    ``i`` carries ``data(i)``, which must hold the send time as ``"t"`` (the receiver's clock)."""
    interval = batch / rate
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    tasks = []
    while loop.time() - start < seconds:
        reqs = [
            event_request(event_type="order.created", data=data(sent + j), **targets)
            for j in range(batch)
        ]
        tasks.append(asyncio.create_task(client.batch_create_events(reqs)))
        sent += batch
        next_at = start + (sent / batch) * interval
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    await asyncio.gather(*tasks)
    return sent


# -- scenarios ----------------------------------------------------------------------------------


async def ingest(client: Client, receiver: int, daemon: Daemon, size: Size) -> dict[str, Any]:
    ep = await client.create_endpoint(pb.Endpoint(url=f"http://127.0.0.1:{receiver}/ingest"))
    await client.pause_endpoint(ep.id)  # ingest alone: deliveries are recorded, not sent
    loop = asyncio.get_running_loop()

    async def singles() -> int:
        count = 0

        async def one() -> None:
            nonlocal count
            while loop.time() < end:
                await client.create_event(event_type="t", data=payload(count), endpoint_ids=[ep.id])
                count += 1

        await asyncio.gather(*(one() for _ in range(32)))
        return count

    end = loop.time() + size.ingest_seconds
    start = loop.time()
    single = await singles() / (loop.time() - start)
    count = 0
    end = loop.time() + size.ingest_seconds
    start = loop.time()

    async def batches() -> None:
        nonlocal count
        while loop.time() < end:
            reqs = [
                event_request(event_type="t", data=payload(count + j), endpoint_ids=[ep.id])
                for j in range(500)
            ]
            await client.batch_create_events(reqs)
            count += 500

    await asyncio.gather(*(batches() for _ in range(4)))
    return {
        "single_events_per_s": round(single),
        "batched_events_per_s": round(count / (loop.time() - start)),
    }


async def throughput(client: Client, receiver: int, daemon: Daemon, size: Size) -> dict[str, Any]:
    """(a) one endpoint, ingest as fast as the daemon takes it, delivered/s over the window."""
    # The most concurrency an endpoint may have: one endpoint's throughput is its concurrency
    # over the round trip, and this receiver answers at once (128 gives 10-20 % less).
    ep = await client.create_endpoint(
        pb.Endpoint(url=f"http://127.0.0.1:{receiver}/a", max_concurrency=256)
    )
    await asyncio.to_thread(receiver_stats, receiver, True)
    loop = asyncio.get_running_loop()
    stop = loop.time() + size.window + 5
    accepted = 0

    # The load generator must not compete with the daemon for the CPU it measures: one batch
    # of 500 events is serialized once and the same bytes are sent again and again (the
    # daemon still validates, stores and delivers every event of every call).
    batch = event_pb2.BatchCreateEventsRequest(
        requests=[
            event_request(event_type="t", data=payload(j), endpoint_ids=[ep.id]) for j in range(500)
        ]
    ).SerializeToString()
    channel = grpc.aio.insecure_channel(daemon.target)
    send = channel.unary_unary("/convoyd.v1.EventService/BatchCreateEvents")
    metadata = (("authorization", f"Bearer {daemon.token}"),)
    delivered_seen = 0

    async def watch_backlog() -> None:
        nonlocal delivered_seen
        while loop.time() < stop:
            delivered_seen = (await asyncio.to_thread(receiver_stats, receiver))["count"]
            await asyncio.sleep(0.1)

    async def load() -> None:
        nonlocal accepted
        while loop.time() < stop:
            if accepted - delivered_seen > 20_000:  # keep a backlog, not an ever-growing one
                await asyncio.sleep(0.02)
                continue
            await send(batch, metadata=metadata, timeout=60)
            accepted += 500

    loader = asyncio.gather(watch_backlog(), *(load() for _ in range(2)))
    await asyncio.sleep(3)  # warm up
    first = await asyncio.to_thread(receiver_stats, receiver)
    assert daemon.proc is not None
    main = [daemon.proc.pid]
    server_cpu = daemon.store_cpu or (lambda: 0.0)
    cpu0, t0 = cpu_seconds(daemon.pids), time.monotonic()
    main0, server0 = cpu_seconds(main), server_cpu()
    while time.monotonic() - t0 < size.window:
        await asyncio.sleep(1)
        daemon.sample()
    last = await asyncio.to_thread(receiver_stats, receiver)
    cpu1, t1 = cpu_seconds(daemon.pids), time.monotonic()
    main1, server1 = cpu_seconds(main), server_cpu()
    await loader
    await channel.close()
    delivered = last["count"] - first["count"]
    per_1000 = 1000 / max(delivered, 1)
    server = {}
    if daemon.store_cpu is not None:
        server = {
            # Summed over the server's processes; with the daemon's, the whole bill per delivery.
            "postgres_cpu_s_per_1000": round((server1 - server0) * per_1000, 3),
            "total_cpu_s_per_1000": round((cpu1 - cpu0 + server1 - server0) * per_1000, 3),
        }
    return {
        "delivered_per_s": round(delivered / (t1 - t0)),
        "window_s": round(t1 - t0, 1),
        "cpu_s_per_1000": round((cpu1 - cpu0) / max(delivered, 1) * 1000, 3),
        # The daemon's own process (gRPC, engine, store): the part that cannot be spread.
        "main_cpu_s_per_1000": round((main1 - main0) / max(delivered, 1) * 1000, 3),
        **server,
    }


async def latency(client: Client, receiver: int, daemon: Daemon, size: Size) -> dict[str, Any]:
    ep = await client.create_endpoint(pb.Endpoint(url=f"http://127.0.0.1:{receiver}/lat"))
    await asyncio.to_thread(receiver_stats, receiver, True)
    sent = await offer(client, size.latency_rate, size.latency_seconds, {"endpoint_ids": [ep.id]})
    stats = await wait_count(receiver, sent, daemon, 30)
    return {
        "offered_per_s": size.latency_rate,
        **{k: round(stats[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms")},
    }


async def fan_out(client: Client, receiver: int, daemon: Daemon, size: Size) -> dict[str, Any]:
    """(b) many endpoints of one owner; every event goes to all of them."""
    for i in range(size.fan_out_endpoints):
        await client.create_endpoint(
            pb.Endpoint(url=f"http://127.0.0.1:{receiver}/fan/{i}", owner_id="fan")
        )
    await asyncio.to_thread(receiver_stats, receiver, True)
    t0 = time.monotonic()
    sent = await offer(
        client, size.fan_out_rate, size.latency_seconds, {"owner_id": "fan"}, batch=1
    )
    stats = await wait_count(receiver, sent * size.fan_out_endpoints, daemon, 120)
    return {
        "endpoints": size.fan_out_endpoints,
        "deliveries": stats["count"],
        "delivered_per_s": round(stats["count"] / max(stats["last"] - stats["first"], 1e-9)),
        "seconds": round(time.monotonic() - t0, 1),
        **{k: round(stats[k], 2) for k in ("p50_ms", "p99_ms")},
    }


async def isolation(client: Client, receiver: int, daemon: Daemon, size: Size) -> dict[str, Any]:
    """(c) the healthy endpoint's latency without, then beside, a dead endpoint's backlog."""
    healthy = await client.create_endpoint(pb.Endpoint(url=f"http://127.0.0.1:{receiver}/healthy"))

    async def measure() -> dict[str, float]:
        await asyncio.to_thread(receiver_stats, receiver, True)
        sent = await offer(
            client, size.isolation_rate, size.latency_seconds, {"endpoint_ids": [healthy.id]}
        )
        return await wait_count(receiver, sent, daemon, 30)

    alone = await measure()
    dead = await client.create_endpoint(pb.Endpoint(url=f"http://127.0.0.1:{closed_port()}/dead"))
    for start in range(0, size.dead_backlog, 500):
        n = min(500, size.dead_backlog - start)
        await client.batch_create_events(
            [
                event_request(event_type="t", data=payload(i), endpoint_ids=[dead.id])
                for i in range(n)
            ]
        )
    beside = await measure()
    return {
        "dead_backlog": size.dead_backlog,
        "healthy_alone_p50_ms": round(alone["p50_ms"], 2),
        "healthy_alone_p99_ms": round(alone["p99_ms"], 2),
        "healthy_beside_dead_p50_ms": round(beside["p50_ms"], 2),
        "healthy_beside_dead_p99_ms": round(beside["p99_ms"], 2),
    }


class Hanging:
    """A loopback server that accepts every connection and never answers (nor reads)."""

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.accepted = 0
        self.server: asyncio.Server | None = None
        self.release = asyncio.Event()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.accepted += 1
        self.peak = max(self.peak, self.open)
        # reader.read() returns once convoyd gives up on the attempt (its timeout) and closes.
        waits = [asyncio.ensure_future(reader.read()), asyncio.ensure_future(self.release.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            self.open -= 1
            writer.close()

    async def close(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def hanging(client: Client, receiver: int, daemon: Daemon, size: Size) -> dict[str, Any]:
    """A healthy endpoint beside many endpoints that accept the connection and never answer.

    Each hanging endpoint gets one event: its attempt hangs until its timeout (15 s), it is
    retried 5 s later and hangs again; the window covers both waves. The healthy endpoint gets
    a modest steady rate and is measured alone first, then beside them.
    """
    healthy = await client.create_endpoint(pb.Endpoint(url=f"http://127.0.0.1:{receiver}/ok"))

    async def measure(seconds: float) -> dict[str, float]:
        await asyncio.to_thread(receiver_stats, receiver, True)
        sent = await offer(
            client, size.hanging_rate, seconds, {"endpoint_ids": [healthy.id]}, batch=1
        )
        return await wait_count(receiver, sent, daemon, 30)

    alone = await measure(size.latency_seconds)
    dead = Hanging()
    port = await dead.start()
    try:
        ids: list[str] = []
        for start in range(0, size.hanging_endpoints, 50):
            made = await asyncio.gather(
                *(
                    client.create_endpoint(pb.Endpoint(url=f"http://127.0.0.1:{port}/hang/{i}"))
                    for i in range(start, min(start + 50, size.hanging_endpoints))
                )
            )
            ids.extend(ep.id for ep in made)
        for start in range(0, len(ids), 500):
            await client.batch_create_events(
                [
                    event_request(event_type="t", data=payload(i), endpoint_ids=[ids[i]])
                    for i in range(start, min(start + 500, len(ids)))
                ]
            )
        beside = await measure(size.hanging_seconds)
        peak, accepted = dead.peak, dead.accepted
    finally:
        await dead.close()
    return {
        "hanging_endpoints": size.hanging_endpoints,
        "hanging_attempts": accepted,  # two waves: each first attempt, then its first retry
        "hanging_open_peak": peak,
        "healthy_per_s": size.hanging_rate,
        "healthy_deliveries": beside["count"],
        "healthy_alone_p50_ms": round(alone["p50_ms"], 2),
        "healthy_alone_max_ms": round(alone["max_ms"], 2),
        **{f"healthy_{k}": round(beside[k], 2) for k in ("p50_ms", "p99_ms", "max_ms")},
        # The target: p50 at most 250 ms, max at most 2 s, beside 1,000 hanging endpoints.
        "met": beside["p50_ms"] <= 250 and beside["max_ms"] <= 2000,
    }


async def drain(client: Client, receiver: int, daemon: Daemon, size: Size) -> dict[str, Any]:
    """(d) a large backlog accepted while the endpoint is paused, then drained."""
    ep = await client.create_endpoint(
        pb.Endpoint(url=f"http://127.0.0.1:{receiver}/d", max_concurrency=128)
    )
    # Paused endpoints discard new events, so build the backlog as RETRY-able work instead:
    # ingest while ACTIVE but with the receiver path answering nothing is not possible with a
    # fast receiver, so measure the drain of a backlog built faster than it is delivered.
    await asyncio.to_thread(receiver_stats, receiver, True)
    rss_start = rss_mb(daemon.pids)
    t0 = time.monotonic()
    for start in range(0, size.drain_backlog, 1000):
        n = min(1000, size.drain_backlog - start)
        await client.batch_create_events(
            [
                event_request(event_type="t", data=payload(start + i), endpoint_ids=[ep.id])
                for i in range(n)
            ]
        )
        daemon.sample()
    ingested = time.monotonic() - t0
    stats = await wait_count(receiver, size.drain_backlog, daemon, 600)
    total = time.monotonic() - t0
    await asyncio.sleep(2)
    rss_after = rss_mb(daemon.pids)
    return {
        "backlog": size.drain_backlog,
        "ingest_s": round(ingested, 1),
        "drained_s": round(total, 1),
        "delivered_per_s": round(stats["count"] / total),
        "rss_start_mb": round(rss_start, 1),
        "rss_after_mb": round(rss_after, 1),
    }


@dataclass(frozen=True)
class Size:
    ingest_seconds: float
    window: float
    latency_rate: float
    latency_seconds: float
    fan_out_endpoints: int
    fan_out_rate: float
    isolation_rate: float
    dead_backlog: int
    hanging_endpoints: int
    hanging_rate: float
    hanging_seconds: float
    drain_backlog: int
    yardstick: int


FULL = Size(5, 30, 1000, 10, 1000, 5, 200, 10_000, 1000, 50, 40, 100_000, 50_000)
SMOKE = Size(0.5, 2, 50, 1, 5, 5, 20, 100, 20, 20, 3, 300, 300)
SCENARIOS: dict[str, Callable[[Client, int, Daemon, Size], Awaitable[dict[str, Any]]]] = {
    "ingest": ingest,
    "a_throughput": throughput,
    "latency": latency,
    "b_fan_out": fan_out,
    "c_isolation": isolation,
    "isolation": hanging,
    "d_drain": drain,
}


def yardstick(port: int, size: Size) -> dict[str, Any]:
    done = subprocess.run(
        [
            PY,
            str(ROOT / "benchmarks" / "yardstick.py"),
            "--url",
            f"http://127.0.0.1:{port}/y",
            "--count",
            str(size.yardstick),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def start_postgres(parent: Path | None = None) -> BenchPostgres:
    sys.path.insert(0, str(ROOT))  # tests.pgserver and benchmarks.* from a plain script run
    from benchmarks.pgbench_support import BenchPostgres

    return BenchPostgres(parent).start()


async def run_scenario(
    name: str, port: int, size: Size, env: dict[str, str], store_cpu: Callable[[], float] | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp) / "data", extra_env=env, store_cpu=store_cpu)
        daemon.start()
        try:
            async with Client(daemon.target, token=daemon.token, timeout=120) as client:
                result = await SCENARIOS[name](client, port, daemon, size)
            daemon.sample()
            result["peak_rss_mb"] = round(daemon.peak_rss, 1)
        finally:
            daemon.stop()
    return result


async def run_all(
    size: Size,
    only: list[str],
    store: str = "sqlite",
    nodes: list[int] | None = None,
    postgres_dir: Path | None = None,
) -> dict[str, Any]:
    stores = STORES[store]
    receiver = subprocess.Popen(
        [PY, str(ROOT / "benchmarks" / "receiver.py")], stdout=subprocess.PIPE
    )
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "store": store,
    }
    by_store: dict[str, dict[str, Any]] = {name: {} for name in stores}
    # (a) of each store over the mean of the yardstick runs right before and right after it.
    against_yardstick: dict[str, float] = {}
    postgres = None
    try:
        if "postgres" in stores:
            postgres = start_postgres(postgres_dir)
            results["postgres_server"] = postgres.info
        # The machine's speed drifts (a shared VM): the yardstick runs at the start and again
        # right after each scenario (a), and (a) is read against the two around it.
        runs = [yardstick(port, size)]
        for name in only:
            # Store after store within a scenario, so each pair sees the same phase of the machine.
            for kind in stores:
                if name == CLUSTER:
                    if kind != "postgres":
                        continue  # a cluster needs the PostgreSQL store
                    from benchmarks.bench_cluster import run_cluster

                    assert postgres is not None and nodes
                    result = await run_cluster(port, postgres, nodes, smoke=size == SMOKE)
                elif name == RETENTION:
                    sys.path.insert(0, str(ROOT))  # benchmarks.* from a plain script run
                    from benchmarks.bench_retention import run_retention

                    on_postgres = postgres if kind == "postgres" else None
                    result = await run_retention(
                        port, on_postgres, smoke=size == SMOKE, yardstick=runs[-1]["per_second"]
                    )
                elif name == TRACING:
                    sys.path.insert(0, str(ROOT))  # benchmarks.* from a plain script run
                    from benchmarks.bench_tracing import run_tracing

                    on_postgres = postgres if kind == "postgres" else None
                    result = await run_tracing(port, size, on_postgres, smoke=size == SMOKE)
                elif kind == "postgres":
                    assert postgres is not None
                    cpu = postgres.cpu_seconds if postgres.postmaster is not None else None
                    with postgres.daemon_env(name) as env:
                        result = await run_scenario(name, port, size, env, cpu)
                else:
                    result = await run_scenario(name, port, size, {}, None)
                by_store[kind][name] = result
                tag = f" [{kind}]" if len(stores) > 1 else ""
                print(f"  {name}{tag}: {json.dumps(result)}", file=sys.stderr, flush=True)
                if name == "a_throughput":
                    runs.append(yardstick(port, size))
                    around = (runs[-2]["per_second"] + runs[-1]["per_second"]) / 2
                    against_yardstick[kind] = result["delivered_per_s"] / around
    finally:
        receiver.terminate()
        receiver.wait(10)
        if postgres is not None:
            postgres.stop()
    if len(stores) == 1:
        results.update(by_store[stores[0]])
    else:
        results.update(
            {
                name: {kind: by_store[kind][name] for kind in stores if name in by_store[kind]}
                for name in only
            }
        )
    per_second = [r["per_second"] for r in runs]
    results["yardstick"] = {
        "deliveries": size.yardstick,
        "runs_per_second": [round(p) for p in per_second],
        "per_second": round(sum(per_second) / len(per_second)),
    }
    if against_yardstick:
        rounded = {kind: round(value, 2) for kind, value in against_yardstick.items()}
        results["ratio_to_yardstick"] = rounded if len(stores) > 1 else rounded[stores[0]]
    if postgres is not None:
        from benchmarks.pgbench_support import ratios, verdicts

        found = ratios(by_store, against_yardstick) if len(stores) > 1 else {}
        if found:
            results["postgres_over_sqlite"] = found
        results["postgres_targets"] = verdicts(by_store, found)
    return results


def table(results: dict[str, Any]) -> str:
    width = max(14, *(len(name) for name in results))
    lines = [f"{'scenario':<{width}} figures", "-" * 60]

    def figures(value: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in value.items())

    for name, value in results.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            # Keyed by store (or by target): one row each, the key in a column of its own.
            keys = max(9, *(len(key) for key in value))
            for i, (key, inner) in enumerate(value.items()):
                lines.append(f"{name if i == 0 else '':<{width}} {key:<{keys}} {figures(inner)}")
        elif isinstance(value, dict):
            lines.append(f"{name:<{width}} {figures(value)}")
        else:
            lines.append(f"{name:<{width}} {value}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds not minutes")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=sorted([*SCENARIOS, CLUSTER, RETENTION, TRACING]),
        help="run only these (retention and tracing run only when named here, cluster also"
        " with --nodes)",
    )
    parser.add_argument(
        "--store",
        choices=sorted(STORES),
        default="sqlite",
        help="the daemon's store: sqlite (default), postgres, or both side by side",
    )
    parser.add_argument(
        "--nodes",
        nargs="+",
        type=int,
        help="the cluster scenario with these node counts (default 1 2 3 with --only cluster)",
    )
    parser.add_argument(
        "--postgres-dir",
        type=Path,
        help="where the bench's own PostgreSQL server keeps its data (default: the temporary"
        " directory); the report names its file system and whether it trims online (discard)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.postgres_dir is not None and not args.postgres_dir.is_dir():
        parser.error(f"--postgres-dir: {args.postgres_dir} is not a directory")
    only = args.only or [*SCENARIOS, *([CLUSTER] if args.nodes else [])]
    nodes = args.nodes or [1, 2, 3]
    if (args.nodes or CLUSTER in only) and args.store == "sqlite":
        parser.error("the cluster scenario needs --store postgres (or both)")
    if args.nodes and CLUSTER not in only:
        parser.error("--nodes is for the cluster scenario: add it to --only")
    if any(n < 1 for n in nodes):
        parser.error("--nodes: at least one node")
    import uvloop

    size = SMOKE if args.smoke else FULL
    results = uvloop.run(run_all(size, only, args.store, nodes, args.postgres_dir))
    text = json.dumps(results, indent=2)
    print(text)
    print(table(results), file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
