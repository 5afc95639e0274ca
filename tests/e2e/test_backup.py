"""`convoyd backup FILE`: a consistent, checked copy of the database while the daemon works."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from convoyd.client import Client
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess
from tests.receivers import Receiver

pytestmark = pytest.mark.e2e


async def convoyd(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "convoyd.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def terminate(daemon: DaemonProcess) -> int:
    """SIGTERM and wait without blocking this loop: the receivers in it must keep answering
    the attempts the daemon drains."""
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    for _ in range(2000):
        if daemon.proc.poll() is not None:
            break
        await asyncio.sleep(0.01)
    return daemon.stop()


def inspect(path: Path) -> tuple[str, int, str]:
    """integrity_check, endpoint count and journal mode of a database file."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        endpoints = db.execute("SELECT count(*) FROM endpoints").fetchone()[0]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    return check, endpoints, mode


async def test_backup_while_the_daemon_delivers(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]], tmp_path: Path
) -> None:
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    receiver = await receivers()
    running = daemon.start()
    target = tmp_path / "backups" / "convoyd.db"
    target.parent.mkdir()
    async with Client(running.grpc_target, token=running.token) as client:
        for n in range(5):
            await client.create_endpoint(pb.Endpoint(url=f"{receiver.url}/{n}", owner_id="bk"))
        stop = asyncio.Event()
        sent = 0

        async def load() -> None:  # light load: events keep coming while the backup runs
            nonlocal sent
            while not stop.is_set():
                await client.create_event(event_type="t", data={"n": sent}, owner_id="bk")
                sent += 1
                await asyncio.sleep(0.005)

        loader = asyncio.create_task(load())
        await receiver.wait_for(20)
        code, out, err = await convoyd(daemon.env, "backup", str(target))
        assert code == 0, err
        size = target.stat().st_size
        assert out.strip() == f"convoyd: backup written to {target} ({size} bytes)"

        # An existing file is kept unless --force says otherwise.
        code, out, err = await convoyd(daemon.env, "backup", str(target))
        assert code == 2
        assert "exists; use --force" in err
        await client.create_endpoint(pb.Endpoint(url=f"{receiver.url}/new", owner_id="bk"))
        code, out, err = await convoyd(daemon.env, "backup", "--force", str(target))
        assert code == 0, err
        stop.set()
        await loader
    assert sent > 0

    check, endpoints, mode = inspect(target)
    assert check == "ok"
    assert endpoints == 6
    assert mode == "delete"  # one self-contained file, no -wal beside it
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # it holds signing secrets
    assert sorted(p.name for p in target.parent.iterdir()) == ["convoyd.db"]  # no temp files
    assert await terminate(daemon) == 0

    # The copy is a working data directory: convoyd serves from it.
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "convoyd.db").write_bytes(target.read_bytes())
    # The database knows tokens only by their hashes: the admin.token file is kept apart.
    (restored / "admin.token").write_bytes((daemon.data_dir / "admin.token").read_bytes())
    daemon.data_dir = restored
    daemon.env["CONVOYD_DATA_DIR"] = str(restored)
    again = daemon.start()
    async with Client(again.grpc_target, token=again.token) as client:
        listed = await client.list_endpoints(owner_id="bk")
        assert len(listed.endpoints) == 6
    assert await terminate(daemon) == 0


async def test_backup_without_a_database_fails_clearly(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    code, _, err = await convoyd(daemon.env, "backup", str(tmp_path / "copy.db"))
    assert code == 2
    assert err.strip() == f"convoyd: no database at {daemon.data_dir / 'convoyd.db'}"
    assert not (tmp_path / "copy.db").exists()
