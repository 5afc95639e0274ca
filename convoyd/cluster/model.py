"""What the cluster tells about itself: its nodes, as the ClusterService lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    """One node as registered in the database (times are seconds since the epoch)."""

    node_id: str
    grpc_address: str
    http_address: str
    version: str
    started_at: float
    heartbeat_at: float
    shards: int
    """How many shards it holds now."""
    alive: bool
    """Whether its heartbeat is within the lease."""


class ClusterView(Protocol):
    """What the control plane may ask of the cluster."""

    @property
    def total_shards(self) -> int:
        """How many shards the endpoints hash into (0 on a single node of the SQLite store)."""

    async def nodes(self) -> list[NodeInfo]:
        """Every registered node, this one included, alive ones first, by node id."""
