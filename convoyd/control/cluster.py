"""ClusterService: the gRPC face of the cluster's nodes, as the ClusterView tells them."""

from __future__ import annotations

from typing import Any

from convoyd.cluster.model import ClusterView, NodeInfo
from convoyd.control import convert
from convoyd.control.status import handles_errors
from convoyd.v1 import cluster_pb2 as pb
from convoyd.v1 import cluster_pb2_grpc

Context = Any  # grpc ships no types for the servicer context


def node_to_pb(node: NodeInfo) -> pb.Node:
    return pb.Node(
        node_id=node.node_id,
        grpc_address=node.grpc_address,
        http_address=node.http_address,
        shards=node.shards,
        started_at=convert.timestamp(node.started_at),
        heartbeat_at=convert.timestamp(node.heartbeat_at),
        version=node.version,
        alive=node.alive,
    )


class ClusterService(cluster_pb2_grpc.ClusterServiceServicer):
    def __init__(self, view: ClusterView) -> None:
        self._view = view

    @handles_errors
    async def ListNodes(
        self, request: pb.ListNodesRequest, context: Context
    ) -> pb.ListNodesResponse:
        nodes = await self._view.nodes()
        return pb.ListNodesResponse(
            nodes=[node_to_pb(node) for node in nodes], total_shards=self._view.total_shards
        )
