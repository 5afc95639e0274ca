"""One data directory, one convoyd: a second `convoyd serve` (or `migrate`) on it exits 2 in one
line naming the directory and the holder's pid, and touches nothing there."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from convoyd.app import App
from convoyd.datadir import LOCK_FILE
from convoyd.errors import StartupError
from tests.conftest import DaemonProcess, daemon_env, loopback_settings, running_app

pytestmark = pytest.mark.e2e


def convoyd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convoyd.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def snapshot(data_dir: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file of the directory with its inode, mtime and content."""
    out = {}
    for path in sorted(data_dir.iterdir()):
        if path.is_file():
            st = path.stat()
            out[path.name] = (st.st_ino, st.st_mtime_ns, path.read_bytes())
    return out


async def serving(target: str) -> bool:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def assert_refused(result: subprocess.CompletedProcess[str], data_dir: Path, pid: int) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(data_dir) in lines[0]
    assert f"pid {pid}" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


async def test_a_second_daemon_on_the_same_data_dir_exits_2_and_touches_nothing(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    first = daemon.start()
    assert daemon.proc is not None
    pid = daemon.proc.pid
    # Data (database, WAL) may change under the running daemon; what must not change is what
    # says who runs here and with which token.
    watched = ("run.json", "admin.token", LOCK_FILE)
    before = {k: v for k, v in snapshot(daemon.data_dir).items() if k in watched}
    assert set(before) == set(watched)

    # Other ports (port 0, and another metrics listener), the same directory; by env and by flag.
    env = daemon_env(daemon.data_dir, CONVOYD_METRICS_LISTEN="127.0.0.1:0")
    assert_refused(convoyd(env, "serve"), daemon.data_dir, pid)
    other = daemon_env(tmp_path / "elsewhere")
    assert_refused(
        convoyd(other, "serve", "--data-dir", str(daemon.data_dir)), daemon.data_dir, pid
    )
    # The same directory by another name is the same directory.
    alias = tmp_path / "alias"
    alias.symlink_to(daemon.data_dir)
    assert_refused(convoyd(daemon_env(alias), "serve"), alias, pid)
    # Migrations never run under a live daemon.
    assert_refused(convoyd(env, "migrate"), daemon.data_dir, pid)

    after = {k: v for k, v in snapshot(daemon.data_dir).items() if k in watched}
    assert after == before
    assert not (tmp_path / "elsewhere").exists() or not any((tmp_path / "elsewhere").iterdir())
    assert await serving(first.grpc_target)
    # A backup only reads and is meant to run beside the daemon.
    backup = convoyd(env, "backup", str(tmp_path / "copy.db"))
    assert backup.returncode == 0, backup.stderr

    assert daemon.stop() == 0
    # Stopped: the directory is free again, for migrate and for a new daemon.
    assert convoyd(env, "migrate").returncode == 0
    again = daemon.start()
    assert again.token == first.token
    assert await serving(again.grpc_target)
    assert daemon.stop() == 0


async def test_a_killed_daemon_leaves_no_lock_behind(daemon: DaemonProcess) -> None:
    daemon.start()
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    assert (daemon.data_dir / LOCK_FILE).exists()  # the file stays; the kernel dropped the lock
    running = daemon.start()
    assert await serving(running.grpc_target)
    assert daemon.stop() == 0


async def test_a_second_app_in_one_process_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with running_app(data_dir) as (_, running):
        run_file = (data_dir / "run.json").read_bytes()
        second = App(loopback_settings(data_dir))
        with pytest.raises(StartupError, match=r"in use by another convoyd \(pid \d+\)"):
            await second.start()
        await second.stop()  # a stop after the refused start must not touch the first's files
        assert (data_dir / "run.json").read_bytes() == run_file
        assert await serving(running.grpc_target)
    # Released on stop: the same directory starts again in the same process.
    async with running_app(data_dir) as (_, running):
        assert await serving(running.grpc_target)
