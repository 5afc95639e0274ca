"""The real `convoyd`: every bad configuration is one line and exit 2 from `serve` and
`check-config`, and one log line on SIGHUP with the running configuration kept."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from convoyd.client import Client, InvalidArgumentError
from tests.conftest import DaemonProcess, daemon_env

pytestmark = pytest.mark.e2e


def bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "latin-1": b'log_level = "d\xe9bug"\n',
        "garbage": bytes(range(256)) * 8,
        "wrong types": b"shutdown_grace = [1]\n[delivery]\nmax_in_flight = { a = 1 }\n",
        "breaker": b"[breaker]\nwindow = []\n",
        "deep": b"a = " + b"[" * 3000 + b"]" * 3000 + b"\n",
    }
    out = {}
    for name, data in files.items():
        out[name] = tmp_path / f"{name.replace(' ', '-')}.toml"
        out[name].write_bytes(data)
    out["a directory"] = tmp_path / "dir.toml"
    out["a directory"].mkdir()
    out["missing"] = tmp_path / "absent.toml"
    return out


def convoyd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "convoyd.cli", *args],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[bytes], what: str) -> None:
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 2, (what, err)
    assert len(err.strip().splitlines()) == 1, (what, err)
    assert err.startswith("convoyd: "), (what, err)
    assert "Traceback" not in err, (what, err)


@pytest.mark.parametrize("command", ["serve", "check-config"])
def test_every_bad_file_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    data_dir = tmp_path / "data"
    env = daemon_env(data_dir)
    for what, path in bad_files(tmp_path).items():
        assert_one_line(convoyd(env, command, "--config", str(path)), what)
        assert_one_line(convoyd({**env, "CONVOYD_CONFIG": str(path)}, command), what)
    assert not data_dir.exists()  # nothing was started


@pytest.mark.parametrize("command", ["serve", "check-config"])
def test_env_and_flags_that_are_not_utf8_are_one_line_and_exit_2(
    tmp_path: Path, command: str
) -> None:
    env = daemon_env(tmp_path / "data")
    latin = os.fsdecode(b"d\xe9bug")  # passed to the child as the raw bytes
    for name in ("CONVOYD_LOG_LEVEL", "CONVOYD_GRPC_LISTEN", "CONVOYD_DELIVERY_ALLOW_CIDRS"):
        result = convoyd({**env, name: latin}, command)
        assert_one_line(result, name)
        assert name.encode() in result.stderr
    result = convoyd(env, command, "--http-listen", os.fsdecode(b"127.0.0.1:\xff"))
    assert_one_line(result, "--http-listen")


async def eventually(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_sighup_with_a_bad_file_logs_one_line_and_keeps_the_config(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    config = tmp_path / "convoyd.toml"
    config.write_text("[delivery]\nmax_payload_bytes = 100\n")
    daemon.args = ["--config", str(config)]
    running = daemon.start()
    assert daemon.proc is not None
    bad = {
        "latin-1": b'log_level = "d\xe9bug"\n',
        "garbage": bytes(range(256)) * 8,
        "wrong types": b"[delivery]\nmax_payload_bytes = [1, 2]\n",
        "payload past the batch limit": b"[delivery]\nmax_payload_bytes = 33554432\n",
    }
    async with Client(running.grpc_target, token=running.token) as client:
        for count, (what, data) in enumerate(bad.items(), start=1):
            config.write_bytes(data)
            daemon.proc.send_signal(signal.SIGHUP)
            await eventually(lambda: daemon.log().count("reload failed") >= count)  # noqa: B023
            failed = [line for line in daemon.log().splitlines() if "reload failed" in line]
            assert len(failed) == count, (what, daemon.log())
            assert "keeping the running configuration" in failed[-1], what
            assert "Traceback" not in daemon.log(), what
            # Still serving, on the old limit.
            with pytest.raises(InvalidArgumentError, match="limit of 100 bytes"):
                await client.create_event(event_type="t", data={"x": "x" * 200}, owner_id="nobody")
        # The file as a directory, then gone.
        config.unlink()
        daemon.proc.send_signal(signal.SIGHUP)
        await eventually(lambda: "does not exist" in daemon.log())
        config.mkdir()
        daemon.proc.send_signal(signal.SIGHUP)
        await eventually(lambda: "Is a directory" in daemon.log())
        assert "Traceback" not in daemon.log()
        assert await client.health() == "SERVING"
    assert daemon.stop() == 0
