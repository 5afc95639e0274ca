"""This node's place in the cluster: its registration, heartbeat and shard leases.

Every TICK the node looks at its leases; every lease/3 it heartbeats, which renews the leases
it holds that have not lapsed. It takes free or expired shards up to its fair share
(⌈shards / live nodes⌉) and hands one back when it is above ⌊shards / live nodes⌋ while another
live node is below that, so shares end within one of each other (architecture.md §11).

Judging its own leases, a node trusts only its monotonic clock: a lease renewed by a heartbeat
sent at t is good, here, until t + lease - margin. So a node that freezes (SIGSTOP, a long
pause) past its lease starts no attempt on waking: ``may_start`` is false before anything has
run, and the next heartbeat, whose renewal only touches unexpired leases, confirms the loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from convoyd.core.shards import shard_of
from convoyd.errors import ConvoydError
from convoyd.store.pg_cluster import Heartbeat, PgCluster, Taken

log = logging.getLogger("convoyd.cluster")

TICK = 1.0  # how often leases are looked at (taking expired shards within a second)


def lease_margin(lease: float) -> float:
    """How much sooner than the database a node deems its own lease gone."""
    return min(2.0, lease * 0.2)


@dataclass(slots=True)
class Shard:
    epoch: int
    good_until: float  # monotonic
    releasing: bool = False


@dataclass
class Hooks:
    """What the node does when shards come and go (convoyd/cluster/node.py)."""

    taken: Callable[[Sequence[Taken]], Awaitable[None]]
    lost: Callable[[Sequence[int]], None]
    release: Callable[[Sequence[int]], Awaitable[None]]
    """Stop starting attempts there, let those in flight end, store their outcomes."""
    heartbeat: Callable[[Heartbeat], Awaitable[None]]
    """After each heartbeat: store breaker states, refresh tokens."""


class Membership:
    def __init__(
        self,
        cluster: PgCluster,
        *,
        node_id: str,
        lease: float,
        version: str,
        addresses: Callable[[], tuple[str, str]],
        watching: Callable[[], bool] = lambda: False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cluster = cluster
        self.node_id = node_id
        self.lease = lease
        self._version = version
        self._addresses = addresses
        self._watching = watching
        self._monotonic = monotonic
        self._shards: dict[int, Shard] = {}
        self._hooks: Hooks | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_beat = -math.inf
        self._beat: Heartbeat | None = None
        self.lease_losses = 0
        self.rebalances = 0

    # -- what the engine and the store ask, synchronously ----------------------------------

    @property
    def total_shards(self) -> int:
        return self._cluster.total_shards

    def shard(self, endpoint_id: str) -> int:
        return shard_of(endpoint_id, self._cluster.total_shards)

    def owns(self, endpoint_id: str) -> bool:
        """Whether this node holds the endpoint's shard (and is not handing it back)."""
        if not self._shards:  # nothing held yet (the number of shards may be unknown yet)
            return False
        held = self._shards.get(self.shard(endpoint_id))
        return held is not None and not held.releasing

    def may_start(self, endpoint_id: str) -> bool:
        """Whether an attempt to the endpoint may start now: its lease is good by this
        node's own clock."""
        if not self._shards:
            return False
        held = self._shards.get(self.shard(endpoint_id))
        return held is not None and not held.releasing and self._monotonic() < held.good_until

    def fence(self, endpoint_id: str) -> tuple[int, int] | None:
        """(shard, epoch) under which this node writes the endpoint's deliveries."""
        if not self._shards:
            return None
        shard = self.shard(endpoint_id)
        held = self._shards.get(shard)
        return None if held is None else (shard, held.epoch)

    def owner_of(self, endpoint_id: str) -> str | None:
        """The node that held the endpoint's shard at the last heartbeat (None: none known). Not
        this node once it is handing the shard back or has: until the next heartbeat names the
        taker, the taker is not known here."""
        if self._beat is None or not self._cluster.total_shards:
            return None
        owner = self._beat.owners.get(self.shard(endpoint_id))
        if owner == self.node_id and not self.owns(endpoint_id):
            return None
        return owner

    @property
    def live_nodes(self) -> int:
        """Nodes alive at the last heartbeat (this one included)."""
        return len(self._beat.live) if self._beat is not None else 0

    @property
    def held(self) -> list[int]:
        """The shards held (being handed back included): what the store loads for."""
        return sorted(self._shards)

    # -- life -----------------------------------------------------------------------------

    async def start(self, hooks: Hooks, *, shards: int) -> None:
        """Registers the node and takes its first shards; then keeps at it in the background."""
        self._hooks = hooks
        await self._cluster.setup(shards)
        grpc_address, http_address = self._addresses()
        await self._cluster.register(
            self.node_id,
            grpc_address=grpc_address,
            http_address=http_address,
            version=self._version,
        )
        await self.tick()
        self._task = asyncio.create_task(self._run(), name="convoyd-cluster-membership")

    async def stop(self) -> None:
        """Hands every shard back at once (a planned restart moves them in about a second)
        and leaves the cluster. Call after the engine has drained."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        shards, self._shards = list(self._shards), {}
        with contextlib.suppress(ConvoydError):
            if shards:
                await self._cluster.release(self.node_id, shards)
            await self._cluster.unregister(self.node_id)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick()
            except ConvoydError as exc:
                log.warning("cluster heartbeat failed: %s", exc)
                self._expire_overdue()
            except Exception:
                log.exception("cluster membership step failed")
                self._expire_overdue()

    async def tick(self) -> None:
        """One step: heartbeat when due, then take or hand back shards toward a fair share."""
        assert self._hooks is not None
        now = self._monotonic()
        if now - self._last_beat >= self.lease / 3:
            await self._heartbeat(now)
        beat = self._beat
        if beat is None:
            return
        total = self._cluster.total_shards
        live = max(1, len(beat.live))
        high, low = math.ceil(total / live), total // live
        mine = len(self._shards)
        if mine < high:
            await self._take(high - mine)
        elif mine > low and any(beat.held.get(n, 0) < low for n in beat.live if n != self.node_id):
            await self._hand_back(max(1, mine - high))

    async def _heartbeat(self, sent: float) -> None:
        assert self._hooks is not None
        beat = await self._cluster.heartbeat(
            self.node_id, lease=self.lease, watching=self._watching()
        )
        self._last_beat = sent
        good_until = sent + self.lease - lease_margin(self.lease)
        lost = [s for s in self._shards if s not in beat.renewed]
        for shard, epoch in beat.renewed.items():
            held = self._shards.get(shard)
            if held is not None and held.epoch == epoch:
                held.good_until = good_until
        self._lose(lost)
        # A node that registered after a long pause, or whose row a peer removed as dead.
        if self.node_id not in beat.live:
            grpc_address, http_address = self._addresses()
            await self._cluster.register(
                self.node_id,
                grpc_address=grpc_address,
                http_address=http_address,
                version=self._version,
            )
        self._beat = beat
        await self._hooks.heartbeat(beat)

    async def _take(self, count: int) -> None:
        assert self._hooks is not None
        sent = self._monotonic()
        taken = await self._cluster.acquire(self.node_id, lease=self.lease, count=count)
        if not taken:
            return
        good_until = sent + self.lease - lease_margin(self.lease)
        for t in taken:
            self._shards[t.shard] = Shard(epoch=t.epoch, good_until=good_until)
        log.info("took %d shards", len(taken), extra={"shards": len(self._shards)})
        await self._hooks.taken(taken)

    async def _hand_back(self, count: int) -> None:
        assert self._hooks is not None
        chosen = sorted(self._shards)[-count:]
        for shard in chosen:
            self._shards[shard].releasing = True
        try:
            await self._hooks.release(chosen)
        finally:
            # Released in the database only once outcomes are stored: the taker then loads
            # every delivery's final state.
            for shard in chosen:
                self._shards.pop(shard, None)
            await self._cluster.release(self.node_id, chosen)
        self.rebalances += 1
        log.info("handed back %d shards", len(chosen), extra={"shards": len(self._shards)})

    def _expire_overdue(self) -> None:
        """Without a heartbeat, leases lapse by this node's clock: drop what is overdue."""
        now = self._monotonic()
        self._lose([s for s, held in self._shards.items() if held.good_until <= now])

    def _lose(self, shards: Iterable[int]) -> None:
        lost = [s for s in shards if s in self._shards]
        if not lost:
            return
        for shard in lost:
            del self._shards[shard]
        self.lease_losses += len(lost)
        log.warning("lost the lease of %d shards", len(lost), extra={"shards": len(self._shards)})
        assert self._hooks is not None
        self._hooks.lost(lost)
