"""convoyd.systemd (sd_notify without libsystemd) and what a reload may change (convoyd.reload)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from convoyd.reload import effective, restart_only_changes
from convoyd.settings import DeliverySettings, Settings, TlsSettings
from convoyd.systemd import Notifier, monotonic_usec, watchdog


def receive(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_notifies_a_path_socket(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "n.sock"))
        sock.settimeout(5)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "n.sock")})
        assert notifier.enabled
        assert notifier.ready("serving; 3 endpoints")
        assert receive(sock) == {"READY": "1", "STATUS": "serving; 3 endpoints"}
        before = monotonic_usec()
        notifier.reloading()
        fields = receive(sock)
        assert fields["RELOADING"] == "1"
        assert before <= int(fields["MONOTONIC_USEC"]) <= monotonic_usec()
        notifier.stopping()
        assert receive(sock)["STOPPING"] == "1"
        notifier.close()


def test_notifies_an_abstract_socket() -> None:
    name = f"convoyd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert notifier.watchdog()
        assert receive(sock) == {"WATCHDOG": "1"}
        notifier.close()


def test_without_systemd_every_call_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.watchdog_interval is None


def test_a_vanished_socket_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert not notifier.watchdog()
    assert not notifier.watchdog()
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1
    notifier.close()


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "nonsense"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout(env: dict[str, str], interval: float | None) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "/run/systemd/notify", **env})
    assert notifier.watchdog_interval == interval


async def test_watchdog_pings_only_while_alive(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "n.sock"))
        sock.setblocking(False)
        notifier = Notifier(str(tmp_path / "n.sock"))
        alive = True
        task = asyncio.create_task(watchdog(notifier, 0.01, alive=lambda: alive))
        await asyncio.sleep(0.1)
        pings = 0
        while True:
            try:
                sock.recv(100)
            except BlockingIOError:
                break
            pings += 1
        assert pings >= 3
        alive = False
        await asyncio.sleep(0.05)
        while True:  # drain what was sent before the change
            try:
                sock.recv(100)
            except BlockingIOError:
                break
        await asyncio.sleep(0.1)
        with pytest.raises(BlockingIOError):
            sock.recv(100)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        notifier.close()


def test_reload_keeps_what_needs_a_restart(tmp_path: Path) -> None:
    old = Settings(data_dir=tmp_path / "a", grpc_listen="127.0.0.1:7400")
    new = Settings(
        data_dir=tmp_path / "b",
        grpc_listen="127.0.0.1:7500",
        log_level="debug",
        delivery=DeliverySettings(allow_cidrs=("10.0.0.0/8",), response_body_limit=10),
        tls=TlsSettings(cert_file=Path("c.pem"), key_file=Path("k.pem")),
    )
    assert restart_only_changes(old, new) == [
        "data_dir",
        "grpc_listen",
        "delivery.response_body_limit",
        "tls (turning TLS on or off)",
    ]
    applied = effective(old, new)
    assert applied.data_dir == old.data_dir
    assert applied.grpc_listen == old.grpc_listen
    assert applied.delivery.response_body_limit == old.delivery.response_body_limit
    assert not applied.tls.enabled
    assert applied.log_level == "debug"
    assert applied.delivery.allow_cidrs == ("10.0.0.0/8",)
    assert restart_only_changes(old, old) == []
