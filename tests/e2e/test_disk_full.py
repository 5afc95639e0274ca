"""The database on a nearly full filesystem: ingest fails cleanly, nothing accepted is lost,
and convoyd recovers once there is space again.

The test mounts a small tmpfs of its own (root is needed, as on the development machines and
in CI) and grows it afterwards to give the space back.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from convoyd.client import Client, ResourceExhaustedError, UnavailableError, event_request
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess, daemon_env
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_full_disk_refuses_cleanly_and_recovers(
    small_disk: Path, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await receivers()
    data_dir = small_disk / "data"
    daemon = DaemonProcess(
        data_dir=data_dir, env=daemon_env(data_dir, CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8")
    )
    running = daemon.start()
    accepted: list[int] = []
    refusal: Exception | None = None
    try:
        async with Client(running.grpc_target, token=running.token) as client:
            ep = await client.create_endpoint(pb.Endpoint(url=receiver.url))
            await client.pause_endpoint(ep.id)  # keep everything in the database
            blob = "x" * 20_000
            for start in range(0, 2000, 10):
                batch = [
                    event_request(event_type="t", data={"i": i, "pad": blob}, endpoint_ids=[ep.id])
                    for i in range(start, start + 10)
                ]
                try:
                    await client.batch_create_events(batch)
                except (ResourceExhaustedError, UnavailableError) as exc:
                    refusal = exc
                    break
                accepted.extend(range(start, start + 10))
            assert refusal is not None, "the disk never filled up"
            assert "disk is full" in str(refusal) or "unavailable" in str(refusal).lower()
            assert accepted, "nothing was accepted before the disk filled"

            # Space comes back: the same daemon accepts again, and everything is delivered.
            remount = ["mount", "-o", "remount,size=64m", str(small_disk)]
            await asyncio.to_thread(subprocess.run, remount, check=True)
            later = event_request(event_type="t", data={"i": -1}, endpoint_ids=[ep.id])
            await client.batch_create_events([later])
            await client.resume_endpoint(ep.id)
            await client.batch_retry_deliveries(endpoint_id=ep.id)

            def delivered() -> set[int]:
                return {json.loads(r.body)["i"] for r in receiver.requests}

            await eventually(lambda: {*accepted, -1} <= delivered(), timeout=60, interval=0.2)
        assert daemon.stop() == 0
    finally:
        if daemon.proc is not None:
            daemon.proc.kill()
    db = sqlite3.connect(data_dir / "convoyd.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
