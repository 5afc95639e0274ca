"""Helpers for the cluster's end-to-end tests: several real `convoyd serve` nodes on one
PostgreSQL database, a load that survives any node going away, and a receiver that tracks
requests in flight.

Node processes start in a thread (``DaemonProcess.start`` polls with ``time.sleep``) and stop by
an asynchronous wait, so the receivers living in the test's event loop keep answering while a
node starts or drains: a blocked loop would stall every node's attempts and skew the timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer

from convoyd.client import Client, ConvoydClientError, event_request
from convoyd.core.shards import shard_of
from convoyd.v1 import cluster_pb2
from tests.conftest import DaemonProcess, Running, daemon_env
from tests.receivers import eventually

LEASE = 3.0
BATCH = 50
LOG_TAIL = 25  # lines of each node log shown with a failure


@dataclass
class Node:
    """One member: its process, where it listens, its id in cluster_nodes, and every log it
    wrote (one file per start)."""

    name: str
    daemon: DaemonProcess
    node_id: str = ""
    client: Client | None = None
    running: Running | None = None
    logs: list[Path] = field(default_factory=list)
    frozen: bool = False

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None, f"{self.name} is not running"
        return self.daemon.proc.pid

    @property
    def up(self) -> bool:
        return self.daemon.proc is not None and self.daemon.proc.poll() is None


def _family(pid: int) -> list[int]:
    """The process and its children (the sender workers): a whole node, for SIGSTOP/SIGCONT."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(c) for c in children)]


class Cluster:
    """Nodes on one database; each its own data dir under ``base``. The first node started
    mints admin.token, which is copied into each later node's data dir (docs/cluster.md)."""

    def __init__(self, base: Path, dsn: str, *, lease: float = LEASE) -> None:
        self.base = base
        self.dsn = dsn
        self.lease = lease
        self.nodes: list[Node] = []
        self.token = ""
        self._retired: list[Client] = []

    def add(self) -> Node:
        name = f"node{len(self.nodes) + 1}"
        data_dir = self.base / name / "data"
        data_dir.parent.mkdir(parents=True)  # where DaemonProcess writes the node's logs
        env = daemon_env(
            data_dir,
            CONVOYD_STORE="postgres",
            CONVOYD_POSTGRES_DSN=self.dsn,
            CONVOYD_CLUSTER_LEASE=str(self.lease),
            CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8",
        )
        node = Node(name=name, daemon=DaemonProcess(data_dir=data_dir, env=env))
        self.nodes.append(node)
        return node

    async def start(self, node: Node) -> Node:
        """Starts (or restarts) the node and waits until it serves with the shared token."""
        if self.token:
            node.daemon.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            token_file = node.daemon.data_dir / "admin.token"
            if not token_file.exists():
                token_file.write_text(self.token + "\n")
                token_file.chmod(0o600)
        running = await asyncio.to_thread(node.daemon.start, 30.0)
        node.running = running
        assert node.daemon.log_path is not None
        node.logs.append(node.daemon.log_path)
        self.token = self.token or running.token
        node.client = Client(running.grpc_target, token=self.token, timeout=10)
        listed = await node.client.list_nodes()
        node.node_id = next(
            n.node_id for n in listed.nodes if n.grpc_address == running.grpc_target
        )
        return node

    async def start_new(self, count: int = 1) -> list[Node]:
        return [await self.start(self.add()) for _ in range(count)]

    def _gone(self, node: Node) -> None:
        # Closed only at the end: closing a channel cancels the calls on it, and a Load in the
        # middle of one would see CancelledError instead of the node's failure.
        if node.client is not None:
            self._retired.append(node.client)
            node.client = None

    async def kill(self, node: Node) -> None:
        """kill -9 of the node and its sender workers, as when its host dies (the daemon
        first: it must not see its workers die and react)."""
        for pid in _family(node.pid):
            os.kill(pid, signal.SIGKILL)
        await self.wait_exit(node, within=10)

    async def stop(self, node: Node, within: float = 20.0) -> int:
        """SIGTERM and an asynchronous wait for the exit (receivers keep answering meanwhile)."""
        assert node.daemon.proc is not None
        node.daemon.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit(node, within=within)

    async def wait_exit(self, node: Node, *, within: float) -> int:
        proc = node.daemon.proc
        assert proc is not None
        await eventually(lambda: proc.poll() is not None, timeout=within, interval=0.05)
        node.daemon.proc = None
        self._gone(node)
        code = proc.returncode
        assert code is not None
        return code

    def freeze(self, node: Node) -> None:
        for pid in _family(node.pid):
            os.kill(pid, signal.SIGSTOP)
        node.frozen = True

    def thaw(self, node: Node) -> None:
        for pid in _family(node.pid):
            os.kill(pid, signal.SIGCONT)
        node.frozen = False

    async def close(self) -> None:
        for node in self.nodes:
            if node.up:
                if node.frozen:
                    self.thaw(node)
                assert node.daemon.proc is not None
                for pid in _family(node.pid):
                    os.kill(pid, signal.SIGKILL)
                node.daemon.proc.wait(10)
                node.daemon.proc = None
            self._gone(node)
        for client in self._retired:
            await client.close()
        self._retired.clear()

    @property
    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.up and n.client is not None]

    def any_client(self) -> Client:
        return next(n.client for n in self.live if n.client is not None and not n.frozen)

    # -- what the database says -----------------------------------------------------------

    async def shard_owners(self) -> tuple[int, dict[int, str]]:
        """(total shards, shard → node id) for the leases that have not expired."""
        conn = await asyncpg.connect(self.dsn)
        try:
            total = int(
                await conn.fetchval("SELECT value FROM cluster_settings WHERE key = 'shards'")
            )
            rows = await conn.fetch(
                "SELECT shard, node_id FROM cluster_shards"
                " WHERE node_id IS NOT NULL AND lease_until > now()"
            )
        finally:
            await conn.close()
        return total, {r["shard"]: r["node_id"] for r in rows}

    async def owner_of(self, endpoint_id: str) -> str | None:
        total, owners = await self.shard_owners()
        return owners.get(shard_of(endpoint_id, total))

    async def wait_spread(self, members: Sequence[Node], within: float = 30.0) -> dict[str, int]:
        """Waits until exactly ``members`` are alive and hold every shard, within one of each
        other (so each holds ⌊total/n⌋ or ⌈total/n⌉); returns shards per node id."""
        wanted = {n.node_id for n in members}
        last: list[cluster_pb2.Node] = []

        async def spread() -> bool:
            nonlocal last
            try:
                listed = await self.any_client().list_nodes()
            except ConvoydClientError:
                return False
            last = list(listed.nodes)
            alive = {n.node_id: n.shards for n in listed.nodes if n.alive}
            shares = list(alive.values())
            return (
                set(alive) == wanted
                and sum(shares) == listed.total_shards
                and max(shares) - min(shares) <= 1
            )

        try:
            await eventually(spread, timeout=within, interval=0.2)
        except AssertionError:
            shown = [(n.node_id, n.shards, n.alive) for n in last]
            raise AssertionError(
                f"shards not spread over {sorted(wanted)} within {within}s: {shown}\n{self.logs()}"
            ) from None
        return {n.node_id: n.shards for n in last if n.alive}

    def logs(self, tail: int = LOG_TAIL) -> str:
        """The tail of every log each node wrote, for a failure message."""
        out = []
        for node in self.nodes:
            for path in node.logs:
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- {node.name} ({node.node_id}) {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def errors(self) -> list[str]:
        """Every error line and traceback in every node log (warnings are expected: a lease
        lost to a freeze is one)."""
        found = []
        for node in self.nodes:
            for path in node.logs:
                for line in path.read_text(errors="replace").splitlines():
                    if "level=error" in line or "level=critical" in line or "Traceback" in line:
                        found.append(f"{node.name}: {line}")
        return found


class Load:
    """Batches of events ingested through whichever node ``pick`` gives, until stopped. Only
    batches the API acknowledged count as accepted; after a refused or failed one the load
    goes on with the next node and new numbers (a batch accepted whose answer was lost adds
    only events nobody waits for)."""

    def __init__(
        self,
        pick: Callable[[], Client | None],
        owners: Sequence[str],
        *,
        batch: int = BATCH,
        pause: float = 0.05,
        limit: int | None = None,
        endpoint_ids: Sequence[str] = (),
        first: int = 0,
    ) -> None:
        self._pick = pick
        self._owners = owners
        self._batch = batch
        self._pause = pause
        self._limit = limit
        self.endpoint_ids = list(endpoint_ids)
        self.accepted: list[tuple[str, int]] = []  # (owner, event number)
        self.accepted_at: list[float] = []  # loop time of each acknowledged batch
        self.refused = 0
        self._next = first
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Load:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def done(self) -> None:
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            if self._limit is not None and len(self.accepted) >= self._limit:
                return
            client = self._pick()
            numbers = range(self._next, self._next + self._batch)
            self._next += self._batch
            batch = [
                (self._owners[i % len(self._owners)] if self._owners else "", i) for i in numbers
            ]
            if client is not None:
                try:
                    await client.batch_create_events(
                        [
                            event_request(
                                event_type="load",
                                data={"i": i},
                                owner_id=owner,
                                endpoint_ids=self.endpoint_ids,
                            )
                            for owner, i in batch
                        ]
                    )
                except ConvoydClientError:
                    self.refused += 1
                else:
                    self.accepted.extend(batch)
                    self.accepted_at.append(loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._pause)


def round_robin(cluster: Cluster) -> Callable[[], Client | None]:
    """A picker over the nodes serving now (none frozen), one after the other."""
    turn = 0

    def pick() -> Client | None:
        nonlocal turn
        clients = [n.client for n in cluster.live if n.client is not None and not n.frozen]
        if not clients:
            return None
        turn += 1
        return clients[turn % len(clients)]

    return pick


@dataclass
class Arrival:
    path: str
    number: int
    webhook_id: str
    at: float  # the receiver's loop time when the request came in


@dataclass
class TrackingReceiver:
    """A loopback receiver that records every request's arrival, and the most requests
    ever in flight at once, per path. Answers 200 after ``delay`` seconds."""

    delay: float = 0.0
    delays: dict[str, float] = field(default_factory=dict)  # per path, overrides delay
    arrivals: list[Arrival] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    most_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        path = request.path
        self.in_flight[path] += 1
        self.most_in_flight[path] = max(self.most_in_flight[path], self.in_flight[path])
        try:
            body = await request.read()
            arrival = Arrival(
                path=path,
                number=json.loads(body)["i"],
                webhook_id=request.headers["webhook-id"],
                at=loop.time(),
            )
            self.arrivals.append(arrival)
            delay = self.delays.get(path, self.delay)
            if delay:
                await asyncio.sleep(delay)
            return web.Response(text="ok")
        finally:
            self.in_flight[path] -= 1

    async def start(self) -> TrackingReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def times(self, path: str) -> list[float]:
        return sorted(a.at for a in self.arrivals if a.path == path)

    def numbers(self, path: str) -> set[int]:
        return {a.number for a in self.arrivals if a.path == path}


def most_in_window(times: Iterable[float], window: float, tolerance: float) -> int:
    """The most arrivals in any half-open interval [t, t + window - tolerance) starting at an
    arrival (the busiest window always starts at one)."""
    ordered = sorted(times)
    most, j = 0, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + window - tolerance:
            j += 1
        most = max(most, j - i)
    return most


def delivered(requests: Iterable[tuple[str, int, str]]) -> dict[tuple[str, int], set[str]]:
    """(path, event number) → the webhook-ids it came with."""
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    for path, number, webhook_id in requests:
        seen[(path, number)].add(webhook_id)
    return seen
