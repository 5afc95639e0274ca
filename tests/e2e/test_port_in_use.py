"""A listen address some other process holds: `convoyd serve` exits 2 in one line naming the
setting, the address and the holder (another convoyd by its pid, or another program), and
never prints grpc's own add_port.cc complaint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess, daemon_env

pytestmark = pytest.mark.e2e


def convoyd_serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convoyd.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port found free (bound to port 0), then held by a plain listening socket of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one line of a refused start (the admin-token notice of a new directory aside)."""
    assert result.returncode == 2, result.stderr
    assert "add_port.cc" not in result.stderr and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "wrote a new admin token" not in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("setting", ["GRPC_LISTEN", "HTTP_LISTEN"])
def test_a_port_another_program_holds(held_port: int, tmp_path: Path, setting: str) -> None:
    listen = f"127.0.0.1:{held_port}"
    env = daemon_env(tmp_path / "data", **{f"CONVOYD_{setting}": listen})
    line = refusal(convoyd_serve(env))
    name = setting.lower()
    assert line == (
        f"convoyd: {name} {listen} is in use by another process (pid {os.getpid()},"
        f" {Path(f'/proc/{os.getpid()}/comm').read_text().strip()}); stop it, or give this one"
        f" another {name} (port 0 picks a free port)"
    )
    assert not (tmp_path / "data" / "run.json").exists()


def test_a_port_another_convoyd_listens_on(daemon: DaemonProcess, tmp_path: Path) -> None:
    first = daemon.start()
    assert daemon.proc is not None
    # Another data directory (the same one is refused earlier, by its lock), the first's port.
    env = daemon_env(tmp_path / "second", CONVOYD_GRPC_LISTEN=first.grpc_target)
    line = refusal(convoyd_serve(env))
    assert line.startswith(f"convoyd: grpc_listen {first.grpc_target} is in use by")
    assert f"another convoyd (pid {daemon.proc.pid})" in line
    assert daemon.stop() == 0
