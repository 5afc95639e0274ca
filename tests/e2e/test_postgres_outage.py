"""PostgreSQL taken down under load and brought back: the real `convoyd serve` refuses what it
cannot store (UNAVAILABLE), says NOT_SERVING meanwhile, and resumes by itself afterwards;
every event it accepted reaches every target. And a PostgreSQL that is down at start: exit 2
with one line naming it.

The test runs a PostgreSQL server of its own (tests/pgserver.py), since it stops it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from convoyd.client import Client, UnavailableError, event_request
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess, daemon_env
from tests.pgserver import PostgresServer, free_port
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.e2e

BATCH = 50
TARGETS = 2


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def on_postgres(
    tmp_path: Path, own_server: PostgresServer
) -> AsyncIterator[tuple[DaemonProcess, PostgresServer]]:
    dsn = own_server.create_database("outage")
    data_dir = tmp_path / "data"
    process = DaemonProcess(
        data_dir=data_dir,
        env=daemon_env(
            data_dir,
            CONVOYD_STORE="postgres",
            CONVOYD_POSTGRES_DSN=dsn,
            CONVOYD_POSTGRES_CONNECT_TIMEOUT="1",
            CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8",
        ),
    )
    try:
        yield process, own_server
    finally:
        if process.proc is not None and process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


async def _healthz(http_url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{http_url}/healthz") as r:
        return r.status


async def _grpc_health(target: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return int(reply.status)


async def test_postgres_restarted_under_load_loses_nothing_and_resumes(
    on_postgres: tuple[DaemonProcess, PostgresServer],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    daemon, server = on_postgres
    receiver = await receivers()
    running = daemon.start()
    accepted: list[int] = []
    refused: list[BaseException] = []
    outage_over = asyncio.Event()
    async with Client(running.grpc_target, token=running.token) as client:
        for n in range(TARGETS):
            await client.create_endpoint(pb.Endpoint(url=f"{receiver.url}/{n}", owner_id="pg"))

        async def ingest() -> None:
            start = 0
            # Until the outage is over and a few batches went in afterwards.
            after = 0
            while after < 10:
                batch = [
                    event_request(event_type="load", data={"i": i}, owner_id="pg")
                    for i in range(start, start + BATCH)
                ]
                try:
                    await client.batch_create_events(batch)
                except UnavailableError as exc:
                    refused.append(exc)
                    await asyncio.sleep(0.05)
                else:
                    accepted.extend(range(start, start + BATCH))
                    if outage_over.is_set():
                        after += 1
                start += BATCH

        loader = asyncio.create_task(ingest())
        await eventually(lambda: len(accepted) >= 20 * BATCH, timeout=60)
        await asyncio.to_thread(server.stop_only, "immediate")
        await eventually(lambda: refused, timeout=30)

        async def not_serving() -> bool:
            return await _healthz(running.http_url) == 503

        await eventually(not_serving, timeout=15)
        assert await _grpc_health(running.grpc_target) == health_pb2.HealthCheckResponse.NOT_SERVING

        await asyncio.to_thread(server.start_again)
        outage_over.set()

        async def serving() -> bool:
            return await _healthz(running.http_url) == 200

        await eventually(serving, timeout=30)
        assert await _grpc_health(running.grpc_target) == health_pb2.HealthCheckResponse.SERVING
        await asyncio.wait_for(loader, timeout=120)

    def delivered() -> set[tuple[str, int]]:
        return {(r.path, json.loads(r.body)["i"]) for r in receiver.requests}

    expected = {(f"/hook/{n}", i) for n in range(TARGETS) for i in accepted}
    await eventually(lambda: expected <= delivered(), timeout=90, interval=0.2)
    assert all("unavailable" in str(e).lower() for e in refused), refused[:3]
    print(f"accepted={len(accepted)} refused_batches={len(refused)}")
    assert daemon.proc is not None and daemon.proc.poll() is None  # never restarted
    assert daemon.stop() == 0


def test_postgres_down_at_start_exits_2_naming_it(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = daemon_env(
        tmp_path / "data",
        CONVOYD_STORE="postgres",
        CONVOYD_POSTGRES_DSN=f"postgresql://convoyd@127.0.0.1:{port}/convoyd",
        CONVOYD_POSTGRES_CONNECT_TIMEOUT="2",
    )
    result = subprocess.run(
        [sys.executable, "-m", "convoyd.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"convoyd: PostgreSQL at 127.0.0.1:{port}/convoyd: cannot connect")
    assert "Traceback" not in result.stderr
