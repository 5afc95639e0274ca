"""convoyd under systemd: sd_notify readiness, watchdog, SIGHUP reload, SIGTERM; the unit file.

The real process talks to a fake $NOTIFY_SOCKET (a datagram socket bound in a temp dir), which
is exactly what systemd gives a Type=notify service. The unit file is checked with
systemd-analyze (verify, and security --offline, which need no running systemd).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from convoyd import settings as config
from convoyd.client import Client
from convoyd.settings import Settings
from convoyd.v1 import delivery_pb2
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess, daemon_env
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parent.parent.parent
UNIT = ROOT / "systemd" / "convoyd.service"
EXAMPLE_CONFIG = ROOT / "systemd" / "convoyd.toml"


class NotifySocket:
    """What systemd listens on: collects sd_notify messages as {KEY: value} dicts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._read = 0

    async def expect(
        self,
        key: str,
        value: str = "1",
        within: float = 10.0,
    ) -> dict[str, str]:
        """The next message (after those already returned) that sets ``key`` to ``value``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            while self._read < len(self.messages):
                _, fields = self.messages[self._read]
                self._read += 1
                if fields.get(key) == value:
                    return fields
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {key}={value} within {within}s: {self.messages}")
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), remaining)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            self.messages.append((time.monotonic(), fields))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> NotifySocket:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener  # type: ignore[misc]
    listener.close()


def write_config(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


async def health(target: str, credentials: grpc.ChannelCredentials | None = None) -> int:
    channel = (
        grpc.aio.secure_channel(target, credentials)
        if credentials
        else grpc.aio.insecure_channel(target)
    )
    async with channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        return int(reply.status)


async def test_ready_watchdog_reload_and_stop(
    daemon: DaemonProcess,
    notify: NotifySocket,
    receivers: Callable[..., Awaitable[Receiver]],
    tmp_path: Path,
) -> None:
    receiver = await receivers()
    config = write_config(tmp_path / "convoyd.toml", 'log_level = "info"\n')
    daemon.args = ["--config", str(config)]
    daemon.env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="400000")
    running = daemon.start()

    ready = await notify.expect("READY")
    # READY=1 is sent after the listeners are up: the gRPC port answers at once.
    assert await health(running.grpc_target) == health_pb2.HealthCheckResponse.SERVING
    assert ready["STATUS"] == "serving; 0 endpoints"

    pings = [await notify.expect("WATCHDOG", within=2) for _ in range(3)]
    assert len(pings) == 3
    times = [at for at, fields in notify.messages if "WATCHDOG" in fields]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.1 < gap < 0.6 for gap in gaps), gaps  # half of WATCHDOG_USEC=0.4 s

    async with Client(running.grpc_target, token=running.token) as client:
        endpoint = await client.create_endpoint(pb.Endpoint(url=receiver.url, owner_id="o"))
        first = await client.create_event(event_type="t", data={"n": 1}, owner_id="o")

        async def blocked() -> bool:
            [delivery] = (await client.list_deliveries(event_id=first.id)).deliveries
            attempts = (await client.list_delivery_attempts(delivery.id)).attempts
            return [a.result for a in attempts] == [delivery_pb2.ATTEMPT_RESULT_BLOCKED]

        # Loopback is not allowed yet: the SSRF guard blocks the attempt.
        await eventually(blocked)
        assert receiver.requests == []
        assert "level=debug" not in daemon.log()

        write_config(config, 'log_level = "debug"\n[delivery]\nallow_cidrs = ["127.0.0.0/8"]\n')
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        reloading = await notify.expect("RELOADING")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert before <= int(reloading["MONOTONIC_USEC"]) <= after
        await notify.expect("READY")
        await client.create_event(event_type="t", data={"n": 2}, endpoint_ids=[endpoint.id])
        received = await receiver.wait_for(1)
        assert {json.loads(r.body)["n"] for r in received} <= {1, 2}
        await eventually(lambda: 'msg="attempt success"' in daemon.log())
        assert "level=debug" in daemon.log()
        assert "configuration reloaded" in daemon.log()

        # An invalid file: the daemon keeps running on what it has and says why in one line.
        write_config(config, 'log_level = "loud"\n')
        daemon.proc.send_signal(signal.SIGHUP)
        await notify.expect("RELOADING")
        await notify.expect("READY")
        failed = [line for line in daemon.log().splitlines() if "reload failed" in line]
        assert len(failed) == 1
        assert "log_level must be one of" in failed[0]
        assert daemon.proc.poll() is None
        assert await client.health() == "SERVING"
        debug_lines = daemon.log().count("level=debug")
        await client.create_event(event_type="t", data={"n": 3}, endpoint_ids=[endpoint.id])
        await eventually(lambda: daemon.log().count("level=debug") > debug_lines)  # still debug

    daemon.proc.send_signal(signal.SIGTERM)
    stopping = await notify.expect("STOPPING")
    assert stopping["STATUS"].startswith("draining")
    assert daemon.proc.wait(20) == 0


def _openssl_cert(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj",
            f"/CN={name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return key, cert


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_reload_swaps_the_grpc_certificate(
    daemon: DaemonProcess, notify: NotifySocket, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    key_a, cert_a = _openssl_cert(certs, "a")
    key_b, cert_b = _openssl_cert(certs, "b")
    live_key, live_cert = certs / "live.key", certs / "live.crt"
    shutil.copy(key_a, live_key)
    shutil.copy(cert_a, live_cert)
    config = write_config(
        tmp_path / "convoyd.toml",
        f'[tls]\ncert_file = "{live_cert}"\nkey_file = "{live_key}"\n',
    )
    daemon.args = ["--config", str(config)]
    daemon.env["NOTIFY_SOCKET"] = str(notify.path)
    running = daemon.start()
    await notify.expect("READY")

    def trusting(cert: Path) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(cert.read_bytes())

    assert await health(running.grpc_target, trusting(cert_a)) == 1
    assert daemon.proc is not None

    # A broken pair is refused on reload; the running certificate stays.
    live_cert.write_text("not a certificate\n")
    daemon.proc.send_signal(signal.SIGHUP)
    await notify.expect("READY")
    assert "reload failed" in daemon.log()
    assert await health(running.grpc_target, trusting(cert_a)) == 1

    shutil.copy(key_b, live_key)
    shutil.copy(cert_b, live_cert)
    daemon.proc.send_signal(signal.SIGHUP)
    await notify.expect("READY")
    # New connections get the new certificate, without a restart.
    assert await health(running.grpc_target, trusting(cert_b)) == 1
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health(running.grpc_target, trusting(cert_a))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert daemon.stop() == 0


# Runs argv[1:] with the kernel's MemoryDenyWriteExecute (prctl PR_SET_MDWE), which is what
# systemd's MemoryDenyWriteExecute=yes enforces with seccomp: no memory both writable and
# executable, no turning writable memory executable. Exits 77 where the kernel lacks it.
MDWE_LAUNCHER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(77)
if libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) != PR_MDWE_REFUSE_EXEC_GAIN:
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


async def test_daemon_works_with_memory_deny_write_execute(
    tmp_path: Path, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await receivers()
    data_dir = tmp_path / "data"
    env = daemon_env(data_dir, CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8")
    log_path = tmp_path / "daemon.log"
    proc = _spawn(
        [sys.executable, "-c", MDWE_LAUNCHER, sys.executable, "-m", "convoyd.cli", "serve"],
        env,
        log_path,
    )
    try:
        deadline = time.monotonic() + 20
        while not (data_dir / "run.json").exists():
            code = proc.poll()
            if code == 77:
                pytest.skip("this kernel has no PR_SET_MDWE")
            assert code is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.05)
        info = json.loads((data_dir / "run.json").read_text())
        token = (data_dir / "admin.token").read_text().strip()
        async with Client(info["grpc"], token=token) as client:
            endpoint = await client.create_endpoint(pb.Endpoint(url=receiver.url))
            await client.create_event(event_type="t", data={}, endpoint_ids=[endpoint.id])
            await receiver.wait_for(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _unit_lines(text: str) -> list[tuple[str, str]]:
    return [
        (key.strip(), value.strip())
        for line in text.splitlines()
        if line and not line.startswith(("#", "[")) and "=" in line
        for key, value in [line.split("=", 1)]
    ]


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: `make test` installs it (Debian's systemd)"
    return found


def _testable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's convoyd, so verify can check it."""
    binary = Path(sys.executable).parent / "convoyd"
    assert binary.exists(), binary
    text = UNIT.read_text()
    rewritten, count = re.subn(
        r"^ExecStart=\S+/convoyd ", f"ExecStart={binary} ", text, flags=re.MULTILINE
    )
    assert count == 1
    unit = tmp_path / "convoyd.service"
    unit.write_text(rewritten)
    return unit


def test_unit_file_says_what_the_daemon_expects() -> None:
    settings = dict(_unit_lines(UNIT.read_text()))
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "main"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["Restart"] == "on-failure"
    assert settings["WatchdogSec"] == "30"
    assert settings["DynamicUser"] == "yes"
    assert settings["StateDirectory"] == "convoyd"
    assert settings["ConfigurationDirectory"] == "convoyd"
    assert settings["ExecStart"].endswith("serve --config /etc/convoyd/convoyd.toml")
    assert float(settings["TimeoutStopSec"]) > Settings().shutdown_grace
    assert "ProcSubset" not in settings  # hides /proc/stat and drops process_* metrics
    assert "IPAddressDeny" not in settings  # webhooks go anywhere


def test_unit_file_verifies(tmp_path: Path) -> None:
    unit = _testable_unit(tmp_path)
    result = subprocess.run(
        [_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Unknown keys, bad values and missing binaries are reported but may not fail the command.
    assert str(unit) not in result.stdout + result.stderr, result.stdout + result.stderr
    assert unit.name not in result.stdout + result.stderr, result.stdout + result.stderr


def test_unit_file_exposure_is_low(tmp_path: Path) -> None:
    unit = _testable_unit(tmp_path)
    result = subprocess.run(
        [_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_example_config_documents_every_key(tmp_path: Path) -> None:
    """Uncommenting every `# key = value` line of systemd/convoyd.toml gives a valid file that
    sets every setting there is."""
    text = EXAMPLE_CONFIG.read_text()
    uncommented = re.sub(r"^# ([a-z_]+ = .+)$", r"\1", text, flags=re.MULTILINE)
    path = write_config(tmp_path / "all.toml", uncommented)
    loaded = config.load(path, env={})
    assert loaded.grpc_listen == "127.0.0.1:7400"

    doc = tomllib.loads(uncommented)
    sections = dict(config._SECTIONS)
    top = {f.name for f in dataclasses.fields(config.Settings)} - set(sections)
    assert {k for k, v in doc.items() if not isinstance(v, dict)} == top
    for name, cls in sections.items():
        documented = set(doc.get(name, {}))
        fields = {f.name for f in dataclasses.fields(cls)}
        assert documented == fields, f"[{name}] documents {documented ^ fields} wrongly"
