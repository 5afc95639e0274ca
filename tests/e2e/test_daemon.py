"""The real `convoyd serve` process: configured by CONVOYD_* env, restarted, and failing clearly."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from convoyd.store import migrations, pg_schema
from convoyd.v1 import endpoint_pb2, endpoint_pb2_grpc
from tests.conftest import DaemonProcess, current_store, daemon_env

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]


async def test_serves_with_env_config_and_endpoints_survive_restart(daemon: DaemonProcess) -> None:
    running = daemon.start()
    token_file = daemon.data_dir / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    async with aiohttp.ClientSession() as http, http.get(f"{running.http_url}/healthz") as reply:
        assert reply.status == 200

    async with running.channel() as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = endpoint_pb2_grpc.EndpointServiceStub(channel)
        created = await stub.CreateEndpoint(
            endpoint_pb2.CreateEndpointRequest(
                endpoint=endpoint_pb2.Endpoint(url="https://example.com/h", owner_id="acme")
            ),
            metadata=running.metadata,
            timeout=10,
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetEndpoint(
                endpoint_pb2.GetEndpointRequest(endpoint_id=created.id), timeout=10
            )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert daemon.stop() == 0
    assert "wrote a new admin token" in daemon.log()
    assert running.token not in daemon.log()  # the token itself is never logged

    again = daemon.start()
    assert again.token == running.token  # the same admin token after a restart
    async with again.channel() as channel:
        stub = endpoint_pb2_grpc.EndpointServiceStub(channel)
        got = await stub.GetEndpoint(
            endpoint_pb2.GetEndpointRequest(endpoint_id=created.id),
            metadata=again.metadata,
            timeout=10,
        )
        assert got.owner_id == "acme"
    assert daemon.stop(signal.SIGINT) == 0


def run_convoyd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convoyd.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_occupied_port_fails_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = daemon_env(tmp_path / "data", CONVOYD_HTTP_LISTEN=f"127.0.0.1:{port}")
        result = run_convoyd(env, "serve")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("convoyd:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"convoyd: http_listen 127.0.0.1:{port} is in use by"), lines


def test_data_dir_that_is_a_file_fails_clearly(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = run_convoyd(daemon_env(not_a_dir), "serve")
    assert result.returncode != 0
    assert f"convoyd: data_dir {not_a_dir}" in result.stderr, result.stderr


def test_bad_config_fails_and_check_config_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[delivery]\nmax_concurrency_per_endpoint = 0\n")
    env = daemon_env(tmp_path / "data")
    for command in ("serve", "check-config"):
        result = run_convoyd(env, command, "--config", str(bad))
        assert result.returncode == 2
        assert "max_concurrency_per_endpoint" in result.stderr
    good = run_convoyd(env, "check-config")
    assert good.returncode == 0 and "configuration OK" in good.stdout


def test_migrate_applies_the_schema(tmp_path: Path) -> None:
    env = daemon_env(tmp_path / "data")
    first = run_convoyd(env, "migrate")
    latest = pg_schema.LATEST if current_store()[0] == "postgres" else migrations.LATEST
    assert first.returncode == 0 and f"{latest} migration(s)" in first.stdout
    second = run_convoyd(env, "migrate")
    assert "0 migration(s)" in second.stdout
