"""Every RPC of every convoyd service refuses a caller without a valid token, streams included.

The list comes from the proto descriptors: an RPC added to the contract is covered at once.
"""

from __future__ import annotations

import grpc
import pytest

from convoyd.v1 import cluster_pb2, delivery_pb2, endpoint_pb2, event_pb2, portal_pb2
from tests.conftest import Running

SERVICES = [
    m.DESCRIPTOR.services_by_name[name]
    for m, name in (
        (endpoint_pb2, "EndpointService"),
        (event_pb2, "EventService"),
        (delivery_pb2, "DeliveryService"),
        (portal_pb2, "PortalService"),
        (cluster_pb2, "ClusterService"),
    )
]
METHODS = [f"/{s.full_name}/{m.name}" for s in SERVICES for m in s.methods]
STREAMING = {f"/{s.full_name}/{m.name}" for s in SERVICES for m in s.methods if m.server_streaming}
BAD_CREDENTIALS = [
    (),
    (("authorization", "Bearer "),),
    (("authorization", "Bearer cvd_not-a-real-token"),),
    (("authorization", "Basic YWRtaW46YWRtaW4="),),
    (("x-api-key", "anything"),),
]


@pytest.mark.parametrize("path", METHODS)
async def test_rpc_without_a_valid_token_is_unauthenticated(app: Running, path: str) -> None:
    async with app.channel() as channel:
        for metadata in BAD_CREDENTIALS:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                if path in STREAMING:
                    async for _ in channel.unary_stream(path)(b"", metadata=metadata, timeout=5):
                        pass
                else:
                    await channel.unary_unary(path)(b"", metadata=metadata, timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, (path, metadata)
            assert app.token not in (info.value.details() or "")
