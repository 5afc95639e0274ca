"""ClusterService over the real gRPC server on loopback: the node list and the shard count."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from convoyd import __version__
from convoyd.app import App
from convoyd.client import Client, UnavailableError
from convoyd.cluster.model import ClusterView, NodeInfo
from convoyd.errors import UnavailableError as StoreUnavailableError
from convoyd.v1 import cluster_pb2, cluster_pb2_grpc
from tests.conftest import Running, loopback_settings

SERVICE = "convoyd.v1.ClusterService"
T = 1_700_000_000.25  # 2023-11-14T22:13:20.25Z


async def list_nodes(running: Running) -> cluster_pb2.ListNodesResponse:
    async with running.channel() as channel:
        stub = cluster_pb2_grpc.ClusterServiceStub(channel)
        response: cluster_pb2.ListNodesResponse = await stub.ListNodes(
            cluster_pb2.ListNodesRequest(), metadata=running.metadata, timeout=10
        )
        return response


async def test_the_sqlite_store_lists_this_node_alone(delivering: tuple[App, Running]) -> None:
    instance, running = delivering
    before = time.time()

    response = await list_nodes(running)

    assert response.total_shards == 0
    [node] = response.nodes
    assert node.node_id == "local"
    assert node.grpc_address == instance.grpc_address == running.grpc_target
    assert f"http://{node.http_address}" == running.http_url
    assert node.http_address != node.grpc_address
    assert (node.shards, node.alive, node.version) == (0, True, __version__)
    started = node.started_at.ToMicroseconds() / 1e6
    beat = node.heartbeat_at.ToMicroseconds() / 1e6
    # Started when the app was made, before this test ran; the heartbeat is the call itself.
    assert started <= before <= beat <= time.time()


async def test_the_heartbeat_moves_and_the_start_does_not(
    delivering: tuple[App, Running],
) -> None:
    _, running = delivering
    first = (await list_nodes(running)).nodes[0]
    await asyncio.sleep(0.01)  # the clock must move between the calls, however coarse
    second = (await list_nodes(running)).nodes[0]
    assert second.started_at == first.started_at
    assert second.heartbeat_at.ToNanoseconds() > first.heartbeat_at.ToNanoseconds()


async def test_the_python_client_lists_the_nodes(client: Client) -> None:
    response = await client.list_nodes()
    assert [n.node_id for n in response.nodes] == ["local"]
    assert response.total_shards == 0


async def test_a_call_without_a_valid_token_is_refused(app: Running) -> None:
    async with app.channel() as channel:
        stub = cluster_pb2_grpc.ClusterServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer cvd_wrong"),)):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ListNodes(cluster_pb2.ListNodesRequest(), metadata=metadata, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_and_reflection_name_the_service(app: Running) -> None:
    async with app.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        got = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
        assert got.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for answer in reflection.ServerReflectionInfo(iter([request]), timeout=10):
            names = {s.name for s in answer.list_services_response.service}
            assert SERVICE in names
            break


# --- another view in the app's place (what the PostgreSQL cluster will be) ------------------


class ThreeNodes:
    """A view of three nodes, one of them dead, on 16 shards."""

    total_shards = 16

    async def nodes(self) -> list[NodeInfo]:
        def node(node_id: str, shards: int, *, alive: bool) -> NodeInfo:
            return NodeInfo(
                node_id=node_id,
                grpc_address=f"{node_id}.invalid:7400",
                http_address=f"{node_id}.invalid:7401",
                version="0.2.0",
                started_at=T,
                heartbeat_at=T + shards,
                shards=shards,
                alive=alive,
            )

        return [node("n-a", 9, alive=True), node("n-b", 7, alive=True), node("n-c", 0, alive=False)]


class Unreachable:
    total_shards = 16

    async def nodes(self) -> list[NodeInfo]:
        raise StoreUnavailableError("the database does not answer")


@contextlib.asynccontextmanager
async def running_with(view: ClusterView, data_dir: Path) -> AsyncIterator[Running]:
    instance = App(loopback_settings(data_dir))
    instance.cluster_view = view
    await instance.start()
    try:
        yield Running(
            grpc_target=instance.grpc_address,
            http_url=f"http://{instance.http_address}",
            data_dir=data_dir,
            token=(data_dir / "admin.token").read_text().strip(),
        )
    finally:
        await instance.stop()


@pytest.fixture
async def three_nodes(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_with(ThreeNodes(), tmp_path / "data") as running:
        yield running


@pytest.fixture
async def unreachable(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_with(Unreachable(), tmp_path / "data") as running:
        yield running


async def test_every_node_of_the_view_is_listed_in_its_order(three_nodes: Running) -> None:
    response = await list_nodes(three_nodes)
    assert response.total_shards == 16
    assert [(n.node_id, n.shards, n.alive) for n in response.nodes] == [
        ("n-a", 9, True),
        ("n-b", 7, True),
        ("n-c", 0, False),
    ]
    first = response.nodes[0]
    assert (first.grpc_address, first.http_address) == ("n-a.invalid:7400", "n-a.invalid:7401")
    assert first.version == "0.2.0"
    assert (first.started_at.seconds, first.started_at.nanos) == (1_700_000_000, 250_000_000)
    assert first.heartbeat_at.seconds == 1_700_000_009


async def test_an_unreachable_database_is_unavailable(unreachable: Running) -> None:
    async with Client(unreachable.grpc_target, token=unreachable.token) as client:
        with pytest.raises(UnavailableError) as info:
            await client.list_nodes()
    assert "the database does not answer" in str(info.value)
