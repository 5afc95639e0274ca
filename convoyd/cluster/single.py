"""The cluster of one: what the ClusterService lists for a daemon on the SQLite store."""

from __future__ import annotations

from collections.abc import Callable

from convoyd import __version__
from convoyd.cluster.model import NodeInfo

LOCAL_NODE_ID = "local"


class SingleNodeView:
    """This process as the only node, with no shards (the SQLite store is never shared)."""

    def __init__(
        self,
        addresses: Callable[[], tuple[str, str]],
        *,
        clock: Callable[[], float],
        version: str = __version__,
    ) -> None:
        """``addresses`` gives the bound (gRPC, HTTP) addresses: with port 0 they are known
        only once the listeners are up, after this view is made."""
        self._addresses = addresses
        self._clock = clock
        self._version = version
        self._started_at = clock()

    @property
    def total_shards(self) -> int:
        return 0

    async def nodes(self) -> list[NodeInfo]:
        grpc_address, http_address = self._addresses()
        return [
            NodeInfo(
                node_id=LOCAL_NODE_ID,
                grpc_address=grpc_address,
                http_address=http_address,
                version=self._version,
                started_at=self._started_at,
                # The process answering is alive by definition: its heartbeat is this call.
                heartbeat_at=self._clock(),
                shards=0,
                alive=True,
            )
        ]
