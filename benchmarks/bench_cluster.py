"""The cluster scenario of benchmarks/bench.py: 1, 2, 3 … convoyd nodes on one PostgreSQL database.

For each node count, on a fresh database: the nodes start one after the other (the first mints
admin.token, which the others are given, as docs/cluster.md tells operators to do), the bench
waits until every node serves, accepts the token and the shards are spread evenly, then makes
the endpoints on the bench's receiver and ingests round-robin over the nodes, keeping a bounded
backlog. Over the window it reads deliveries at the receiver, the CPU of every node's processes
(sender workers included) and PostgreSQL's. The target: PostgreSQL's CPU per delivery at 3 nodes
at most 1.20 times that at 1 node (coordination between nodes must not cost the database much).

Each node's stderr (its log, at warning level) goes to a file of its own; the tail of every
non-empty one is printed when a node fails to start, the shards do not spread, or the run fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench import Daemon, cpu_seconds, payload, receiver_stats
from convoyd.client import Client, UnauthenticatedError, event_request
from convoyd.v1 import endpoint_pb2 as pb
from convoyd.v1 import event_pb2

if TYPE_CHECKING:
    from benchmarks.pgbench_support import BenchPostgres

# PostgreSQL CPU per delivery at the most nodes over that at one node.
POSTGRES_CPU_RATIO_TARGET = 1.20
PER_CALL = 500  # events per BatchCreateEvents, as in scenario (a)
BACKLOG = 20_000  # accepted but not yet delivered: enough to keep every node busy
SPREAD_WITHIN = 60.0  # seconds for the nodes to serve and share the shards
LOG_TAIL = 30  # lines of each node's log shown on a failure


@dataclass(frozen=True)
class ClusterSize:
    endpoints: int
    warm_up: float
    window: float


FULL = ClusterSize(endpoints=1000, warm_up=5, window=30)
SMOKE = ClusterSize(endpoints=20, warm_up=1, window=2)


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """fd 2 is ``path`` while a node starts: Daemon.start lets the daemon (and the sender
    workers it starts) inherit the bench's stderr, and each node's log must be read apart."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Cluster:
    """``count`` nodes on one database, each with its own data dir under ``root``."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.nodes: list[Daemon] = []
        self.logs: list[Path] = []

    def start(self, count: int) -> None:
        for i in range(count):
            data = self.root / f"node{i + 1}" / "data"
            data.mkdir(parents=True, mode=0o700)
            if self.nodes:
                # The token lives in the database; the file is what Daemon (and convoyctl) read.
                token = data / "admin.token"
                shutil.copyfile(self.nodes[0].data_dir / "admin.token", token)
                token.chmod(0o600)
            log = self.root / f"node{i + 1}" / "stderr.log"
            node = Daemon(data, extra_env=self.env)
            self.logs.append(log)
            try:
                with _stderr_to(log):
                    node.start()
            except SystemExit:
                self.nodes.append(node)  # stopped with the others if it is still running
                raise SystemExit(f"convoyd node {i + 1} did not start (its log is above)") from None
            self.nodes.append(node)

    def stop(self) -> None:
        # All at once: stopped one by one, each would hand its shards to the ones still up.
        running = [node for node in self.nodes if node.proc is not None]
        for node in running:
            assert node.proc is not None
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in running:
            assert node.proc is not None
            node.proc.wait(60)
            node.proc = None

    def cpu(self) -> tuple[list[float], float]:
        """Each node's CPU seconds (its processes), and the sum over the nodes' main processes."""
        per_node = [cpu_seconds(node.pids) for node in self.nodes]
        main = cpu_seconds([node.proc.pid for node in self.nodes if node.proc is not None])
        return per_node, main

    def log_lines(self) -> int:
        return sum(len(log.read_text(errors="replace").splitlines()) for log in self.logs)

    def log_tails(self) -> str:
        out = []
        for i, log in enumerate(self.logs):
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            if lines:
                out.append(f"--- node {i + 1} ({log}), last {LOG_TAIL} lines:")
                out.extend(lines[-LOG_TAIL:])
        return "\n".join(out) or "(the nodes logged nothing)"


async def _spread(clients: list[Client]) -> list[int]:
    """Waits until every node accepts the token and the shards are shared within one of each
    other by as many live nodes as were started; returns their shard counts."""
    deadline = time.monotonic() + SPREAD_WITHIN
    seen = "no answer"
    while time.monotonic() < deadline:
        try:
            replies = [await client.list_nodes() for client in clients]
        except UnauthenticatedError:
            seen = "a node does not accept the admin token yet"
        else:
            reply = replies[0]
            shares = [node.shards for node in reply.nodes if node.alive]
            seen = f"{len(shares)} live nodes holding {shares} of {reply.total_shards} shards"
            if (
                len(shares) == len(clients)
                and sum(shares) == reply.total_shards
                and max(shares) - min(shares) <= 1
            ):
                return shares
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the cluster did not spread within {SPREAD_WITHIN:.0f} s: {seen}")


async def _endpoints(clients: list[Client], receiver: int, count: int) -> list[str]:
    """``count`` endpoints on the receiver, made round-robin over the nodes, 50 at a time."""
    ids: list[str] = []
    for start in range(0, count, 50):
        made = await asyncio.gather(
            *(
                clients[i % len(clients)].create_endpoint(
                    pb.Endpoint(url=f"http://127.0.0.1:{receiver}/cluster/{i}")
                )
                for i in range(start, min(start + 50, count))
            )
        )
        ids.extend(ep.id for ep in made)
    return ids


def _batches(ids: list[str]) -> list[bytes]:
    """Serialized once and sent again and again, so the load generator spends little CPU
    beside the nodes it measures; together the batches name every endpoint."""
    out = []
    for b in range(-(-len(ids) // PER_CALL)):
        requests = [
            event_request(
                event_type="t", data=payload(j), endpoint_ids=[ids[(b * PER_CALL + j) % len(ids)]]
            )
            for j in range(PER_CALL)
        ]
        out.append(event_pb2.BatchCreateEventsRequest(requests=requests).SerializeToString())
    return out


async def _measure(
    cluster: Cluster, receiver: int, size: ClusterSize, store_cpu: Callable[[], float] | None
) -> dict[str, Any]:
    nodes = cluster.nodes
    token = nodes[0].token
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(Client(node.target, token=token, timeout=120))
            for node in nodes
        ]
        shares = await _spread(clients)
        ids = await _endpoints(clients, receiver, size.endpoints)
    batches = _batches(ids)
    channels = [grpc.aio.insecure_channel(node.target) for node in nodes]
    sends = [c.unary_unary("/convoyd.v1.EventService/BatchCreateEvents") for c in channels]
    metadata = (("authorization", f"Bearer {token}"),)
    turn = itertools.count()
    accepted = 0
    delivered_seen = 0
    done = asyncio.Event()
    await asyncio.to_thread(receiver_stats, receiver, True)

    async def watch_backlog() -> None:
        nonlocal delivered_seen
        while not done.is_set():
            delivered_seen = (await asyncio.to_thread(receiver_stats, receiver))["count"]
            await asyncio.sleep(0.1)

    async def load() -> None:
        nonlocal accepted
        while not done.is_set():
            if accepted - delivered_seen > BACKLOG:
                await asyncio.sleep(0.02)
                continue
            i = next(turn)
            await sends[i % len(sends)](batches[i % len(batches)], metadata=metadata, timeout=60)
            accepted += PER_CALL

    # Two calls in flight per node, as scenario (a) keeps on its one daemon.
    loader = asyncio.gather(watch_backlog(), *(load() for _ in range(2 * len(nodes))))
    try:
        await asyncio.sleep(size.warm_up)
        server_cpu = store_cpu or (lambda: 0.0)
        first = await asyncio.to_thread(receiver_stats, receiver)
        (cpu0, main0), server0, t0 = cluster.cpu(), server_cpu(), time.monotonic()
        accepted0 = accepted
        await asyncio.sleep(size.window)
        last = await asyncio.to_thread(receiver_stats, receiver)
        (cpu1, main1), server1, t1 = cluster.cpu(), server_cpu(), time.monotonic()
        accepted1 = accepted
    finally:
        done.set()
        await loader
        for channel in channels:
            await channel.close()
    delivered = last["count"] - first["count"]
    per_1000 = 1000 / max(delivered, 1)
    node_cpu = sum(cpu1) - sum(cpu0)
    result: dict[str, Any] = {
        "delivered_per_s": round(delivered / (t1 - t0)),
        "accepted_per_s": round((accepted1 - accepted0) / (t1 - t0)),
        "window_s": round(t1 - t0, 1),
        # Every node's processes, sender workers included.
        "cpu_s_per_1000": round(node_cpu * per_1000, 3),
        "main_cpu_s_per_1000": round((main1 - main0) * per_1000, 3),
        "node_cpu_s": [round(b - a, 1) for a, b in zip(cpu0, cpu1, strict=True)],
        "shards": shares,
        "endpoints_reached": last["paths"],
    }
    if store_cpu is not None:
        result["postgres_cpu_s_per_1000"] = round((server1 - server0) * per_1000, 3)
        result["total_cpu_s_per_1000"] = round((node_cpu + server1 - server0) * per_1000, 3)
    return result


async def run_cluster(
    receiver: int, postgres: BenchPostgres, counts: list[int], *, smoke: bool
) -> dict[str, Any]:
    """The scenario for each node count in ``counts``, then PostgreSQL's CPU ratio."""
    size = SMOKE if smoke else FULL
    store_cpu = postgres.cpu_seconds if postgres.postmaster is not None else None
    out: dict[str, Any] = {}
    for count in counts:
        with (
            postgres.daemon_env(f"cluster_{count}") as env,
            tempfile.TemporaryDirectory() as tmp,
        ):
            cluster = Cluster(Path(tmp), env)
            try:
                cluster.start(count)
                result = await _measure(cluster, receiver, size, store_cpu)
            except (Exception, SystemExit):
                print(cluster.log_tails(), file=sys.stderr, flush=True)
                raise
            finally:
                cluster.stop()
            result["node_log_lines"] = cluster.log_lines()
            if result["node_log_lines"] or not result["delivered_per_s"]:
                print(cluster.log_tails(), file=sys.stderr, flush=True)
        result = {"nodes": count, "endpoints": size.endpoints, **result}
        print(f"  cluster [{count} nodes]: {result}", file=sys.stderr, flush=True)
        out[f"nodes_{count}"] = result
    low, high = min(counts), max(counts)
    if store_cpu is not None and high > low:
        ratio = round(
            out[f"nodes_{high}"]["postgres_cpu_s_per_1000"]
            / max(out[f"nodes_{low}"]["postgres_cpu_s_per_1000"], 1e-9),
            2,
        )
        out[f"postgres_cpu_per_delivery_{high}_over_{low}"] = {
            "value": ratio,
            "target_max": POSTGRES_CPU_RATIO_TARGET,
            # The target is for 3 nodes over 1 at full size; a smoke window is too short.
            "met": ratio <= POSTGRES_CPU_RATIO_TARGET
            if (low, high) == (1, 3) and not smoke
            else None,
        }
    return out
