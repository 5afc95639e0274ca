"""ClusterService calls."""

from __future__ import annotations

from convoyd.client.base import ClientBase
from convoyd.v1 import cluster_pb2


class ClusterCalls(ClientBase):
    async def list_nodes(self) -> cluster_pb2.ListNodesResponse:
        """Every registered node (alive ones first, then by node id) and the shard count."""
        request = cluster_pb2.ListNodesRequest()
        rpc = self._open().cluster.ListNodes
        return await self._unary(rpc, request, cluster_pb2.ListNodesResponse)
