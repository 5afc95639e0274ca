"""A node of a cluster on the PostgreSQL store, put together: its membership (leases), the
work feed between nodes, and the view of the store its engine and recorder get.

The engine runs unchanged for the endpoints of the shards this node holds (so per-endpoint
concurrency, rate limits, breakers and order stay exact with no shared counters): the
membership tells it which endpoints it owns and whether an attempt may start, shards taken
are loaded into it (endpoints, breaker states, pending deliveries) and shards lost or handed
back leave it (architecture.md §11).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CollectorRegistry

from convoyd import __version__
from convoyd.cluster.feed import ClusterFeed
from convoyd.cluster.membership import Hooks, Membership
from convoyd.cluster.metrics import ClusterMetrics
from convoyd.cluster.model import NodeInfo
from convoyd.core.breaker import BreakerSnapshot
from convoyd.core.ids import id_floor, new_id
from convoyd.core.model import Delivery
from convoyd.delivery.engine import Engine
from convoyd.delivery.hub import WatchHub
from convoyd.delivery.recorder import Recorder
from convoyd.settings import Settings
from convoyd.store.base import AttemptRecord, Guard, Payload
from convoyd.store.pg import PostgresStore
from convoyd.store.pg_cluster import Heartbeat, Taken

log = logging.getLogger("convoyd.cluster")

POLL_INTERVAL = 2.0  # the slow poll behind the notifications
POLL_BACK = 60.0  # how far back the poll looks for deliveries made by other nodes


class ShardedDeliveryStore:
    """The store as the engine and the recorder of a cluster node see it: due deliveries of
    the shards held only, and outcomes written under the fence of their shard's lease."""

    def __init__(self, store: PostgresStore, membership: Membership) -> None:
        self._store = store
        self._membership = membership

    async def due_deliveries(self, *, after: float | None, until: float) -> list[Delivery]:
        held = self._membership.held
        if not held:
            return []
        return await self._store.cluster.due_in(held, after=after, until=until)

    async def fifo_heads(self, endpoint_ids: Sequence[str]) -> dict[str, Delivery]:
        """The engine asks only for endpoints it holds; their heads are the store's."""
        return await self._store.fifo_heads(endpoint_ids)

    async def load_payloads(self, event_ids: Sequence[str]) -> dict[str, Payload]:
        return await self._store.load_payloads(event_ids)

    async def record(self, records: Sequence[AttemptRecord]) -> None:
        membership = self._membership
        await self._store.record(records, fence=membership.fence, node_id=membership.node_id)


class ClusterNode:
    """This node's part in the cluster (start after the listeners are bound, stop after the
    engine has drained)."""

    def __init__(
        self,
        store: PostgresStore,
        settings: Settings,
        *,
        addresses: Callable[[], tuple[str, str]],
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self.node_id = new_id("nd", clock(), rng or random.SystemRandom())
        self._hub_watching: Callable[[], bool] = lambda: False
        self.membership = Membership(
            store.cluster,
            node_id=self.node_id,
            lease=settings.cluster.lease,
            version=__version__,
            addresses=addresses,
            watching=lambda: self._hub_watching(),
        )
        self.delivery_store = ShardedDeliveryStore(store, self.membership)
        self._engine: Engine | None = None
        self._recorder: Recorder | None = None
        self._feed: ClusterFeed | None = None
        self._anyone_watching = False
        self._saved_breakers: dict[str, BreakerSnapshot] = {}
        self._poll: asyncio.Task[None] | None = None
        # Reloads the valid API tokens (App sets it): a token one node made works on all.
        self.refresh_tokens: Callable[[], Awaitable[None]] | None = None
        self.lag: Callable[[float], None] = lambda _: None

    def observe(self, registry: CollectorRegistry) -> None:
        """The cluster's metrics on the daemon's registry."""
        membership = self.membership
        metrics = ClusterMetrics(registry, membership, lambda: membership.live_nodes)
        self.lag = metrics.feed_lag.observe

    @property
    def guard(self) -> Guard:
        """What the engine's endpoint status changes are written under."""
        return Guard(node_id=self.node_id, fence=self.membership.fence)

    @property
    def total_shards(self) -> int:
        return self.membership.total_shards

    async def nodes(self) -> list[NodeInfo]:
        return await self._store.cluster.nodes(lease=self._settings.cluster.lease)

    def feed(self, engine: Engine, hub: WatchHub, recorder: Recorder) -> ClusterFeed:
        """The work feed over ``engine`` (made with owns/may_start of self.membership)."""
        self._engine, self._recorder = engine, recorder
        self._hub_watching = lambda: hub.watching
        self._feed = ClusterFeed(
            engine=engine,
            hub=hub,
            membership=self.membership,
            cluster=self._store.cluster,
            dsn=self._settings.postgres.dsn,
            connect_timeout=self._settings.postgres.connect_timeout,
            resync=self._resync,
            anyone_watching=lambda: self._anyone_watching or hub.watching,
            lag=lambda seconds: self.lag(seconds),
        )
        recorder.add_listener(self._feed.recorded)
        return self._feed

    async def start(self) -> None:
        assert self._feed is not None, "feed() first"
        await self._feed.start()
        await self.membership.start(
            Hooks(
                taken=self._taken,
                lost=self._lost,
                release=self._release,
                heartbeat=self._heartbeat,
            ),
            shards=self._settings.cluster.shards,
        )
        self._poll = asyncio.create_task(self._poll_recent(), name="convoyd-cluster-poll")

    async def stop(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll
            self._poll = None
        with contextlib.suppress(Exception):
            await self._save_breakers()
        await self.membership.stop()
        if self._feed is not None:
            await self._feed.stop()

    # -- shards coming and going ----------------------------------------------------------

    def _endpoints_of(self, shards: Sequence[int]) -> list[str]:
        assert self._engine is not None
        chosen = set(shards)
        shard = self.membership.shard
        return [i for i in self._engine.endpoint_ids() if shard(i) in chosen]

    async def _taken(self, taken: Sequence[Taken]) -> None:
        engine = self._engine
        assert engine is not None
        shards = [t.shard for t in taken]
        cluster = self._store.cluster
        endpoints = await cluster.endpoints_in(shards)
        breakers = await cluster.load_breakers([e.id for e in endpoints])
        # Shards another node held: their rate-limited endpoints wait one window, so the
        # receiver never sees more than its limit in any window across the move.
        moved = {t.shard for t in taken if t.had_owner}
        shard = self.membership.shard
        engine.take([e for e in endpoints if shard(e.id) not in moved], [], breakers=breakers)
        engine.take(
            [e for e in endpoints if shard(e.id) in moved],
            [],
            breakers=breakers,
            fill_limiters_at=self._clock(),
        )
        # Read once the lanes exist: a sweep meanwhile admits what it finds for them, and
        # this read covers everything up to where the sweeps have reached.
        engine.admit(await cluster.due_in(shards, after=None, until=engine.swept_until))

    def _lost(self, shards: Sequence[int]) -> None:
        assert self._engine is not None
        self._engine.drop(self._endpoints_of(shards))

    async def _release(self, shards: Sequence[int]) -> None:
        engine, recorder = self._engine, self._recorder
        assert engine is not None and recorder is not None
        ids = self._endpoints_of(shards)
        await engine.release(ids, timeout=max(1.0, self._settings.cluster.lease / 2))
        await recorder.flush()
        await self._save_breakers(ids)

    async def _heartbeat(self, beat: Heartbeat) -> None:
        self._anyone_watching = beat.watching
        await self._save_breakers()
        if self.refresh_tokens is not None:
            await self.refresh_tokens()

    async def _save_breakers(self, endpoint_ids: Sequence[str] | None = None) -> None:
        """Stores the breaker states that changed since last stored (so that a new owner
        does not hammer a dead endpoint)."""
        if self._engine is None:
            return
        snapshots = self._engine.breaker_snapshots(endpoint_ids)
        changed = {i: s for i, s in snapshots.items() if self._saved_breakers.get(i) != s}
        if changed:
            await self._store.cluster.save_breakers(changed, now=self._clock())
            self._saved_breakers.update(changed)

    async def _resync(self) -> None:
        """Everything pending of the shards held, again (notifications may have been lost)."""
        engine = self._engine
        held = self.membership.held
        if engine is None or not held:
            return
        cluster = self._store.cluster
        for endpoint in await cluster.endpoints_in(held):
            engine.endpoint_changed(endpoint)
        engine.admit(await cluster.due_in(held, after=None, until=engine.swept_until))

    async def _poll_recent(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            engine, held = self._engine, self.membership.held
            if engine is None or not held:
                continue
            try:
                now = self._clock()
                recent = await self._store.cluster.recent_due(
                    held, since_id=id_floor("dl", now - POLL_BACK), until=now
                )
                engine.admit(recent)
            except Exception as exc:
                log.warning("the cluster's slow poll failed: %s", exc)
