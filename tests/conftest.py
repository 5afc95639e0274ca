"""Shared fixtures: convoyd in-process on loopback port 0, and the real `convoyd serve` process.

PostgreSQL (tests/pgserver.py): ``postgres_server`` is one server for the session, started
only when a test asks for it; ``postgres_dsn`` is a fresh database for one test.

Both stores: a module (``pytestmark = pytest.mark.both_stores``) or a test marked
``both_stores`` runs twice, ids ``[sqlite]`` and ``[postgres]``. Under postgres,
``loopback_settings()`` and ``daemon_env()`` point convoyd at a fresh database unless the
caller sets the store itself, and ``current_store()`` (or the ``store_dsn`` fixture) tells a
test where it is, to open a second Store on it. Unmarked tests run on SQLite as before.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from convoyd.app import RUN_FILE, App
from convoyd.client import Client
from convoyd.settings import DeliverySettings, PostgresSettings, Settings
from tests.pgserver import PostgresServer
from tests.receivers import Receiver

STORES = ("sqlite", "postgres")


@dataclass
class StoreChoice:
    """The store the running test's convoyd uses: ("sqlite", None) or ("postgres", dsn)."""

    name: str = "sqlite"
    dsn: str | None = None


if __name__ == "tests.conftest":
    STORE = StoreChoice()
else:
    # pytest loads this file as `conftest`, the test modules import it as `tests.conftest`:
    # two module objects, which must share one choice of store.
    from tests.conftest import STORE


def current_store() -> tuple[str, str | None]:
    """("postgres", the test's database URI) in a test's postgres run, else ("sqlite", None)."""
    return STORE.name, STORE.dsn


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_stores: run the module or test on the SQLite and the PostgreSQL store"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_stores") is not None:
        metafunc.parametrize("store_backend", STORES, indirect=True, ids=STORES)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (or $CONVOYD_TEST_POSTGRES_DSN's)."""
    server = PostgresServer.from_env().start()
    try:
        yield server
    finally:
        server.stop()


_database_numbers = itertools.count(1)


@contextlib.contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """A new empty database (CREATE DATABASE: 0.03 to 0.13 s here), dropped afterwards."""
    name = f"test_{next(_database_numbers)}"
    dsn = server.create_database(name)
    try:
        yield dsn
    finally:
        # Dropped at once, so that a long session does not fill the disk with databases.
        server.drop_database(name)


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database of its own for this test, as a postgresql:// URI."""
    with fresh_database(postgres_server) as dsn:
        yield dsn


@pytest.fixture(autouse=True)
def store_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The store of this test: "postgres" (with a fresh database) in a both_stores test's
    postgres run, else "sqlite"."""
    name: str = getattr(request, "param", "sqlite")
    if name == "sqlite":
        yield name
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with fresh_database(server) as dsn:
        STORE.name, STORE.dsn = name, dsn
        try:
            yield name
        finally:
            STORE.name, STORE.dsn = "sqlite", None


@pytest.fixture
def store_dsn(store_backend: str) -> str | None:
    """The test's PostgreSQL database URI in a postgres run, None on SQLite."""
    return STORE.dsn


@dataclass
class Running:
    """Where a convoyd listens and the admin token to call it with."""

    grpc_target: str
    http_url: str
    data_dir: Path
    token: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.grpc_target)


def loopback_settings(data_dir: Path, **overrides: object) -> Settings:
    # In-process apps send from the test's own process (quick to start); the real `convoyd
    # serve` in the e2e tests uses its sender worker processes, as in production.
    overrides.setdefault("delivery", DeliverySettings(sender_workers=0))
    if STORE.dsn is not None and "store" not in overrides:
        overrides["store"] = STORE.name
        overrides.setdefault("postgres", PostgresSettings(dsn=STORE.dsn))
    return Settings(
        data_dir=data_dir,
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        shutdown_grace=1.0,
        **overrides,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def running_app(data_dir: Path, **overrides: object) -> AsyncIterator[tuple[App, Running]]:
    """convoyd in the caller's event loop: real gRPC server, real SQLite, loopback ports."""
    instance = App(loopback_settings(data_dir, **overrides))
    await instance.start()
    try:
        yield (
            instance,
            Running(
                grpc_target=instance.grpc_address,
                http_url=f"http://{instance.http_address}",
                data_dir=data_dir,
                token=(data_dir / "admin.token").read_text().strip(),
            ),
        )
    finally:
        await instance.stop()


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Running]:
    """convoyd in-process with default settings (deliveries to loopback are blocked)."""
    async with running_app(tmp_path / "data") as (_, running):
        yield running


# Deliveries in tests go to receivers on 127.0.0.1, which the SSRF guard blocks by default.
LOOPBACK_ALLOWED = DeliverySettings(allow_cidrs=("127.0.0.0/8", "::1/128"), sender_workers=0)


@pytest.fixture
async def delivering(tmp_path: Path) -> AsyncIterator[tuple[App, Running]]:
    """convoyd in-process, allowed to deliver to loopback receivers."""
    async with running_app(tmp_path / "data", delivery=LOOPBACK_ALLOWED) as pair:
        yield pair


@pytest.fixture
async def client(delivering: tuple[App, Running]) -> AsyncIterator[Client]:
    _, running = delivering
    async with Client(running.grpc_target, token=running.token) as c:
        yield c


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    """A factory of loopback webhook receivers, all closed after the test."""
    made: list[Receiver] = []

    async def make(**kwargs: object) -> Receiver:
        receiver = await Receiver(**kwargs).start()  # type: ignore[arg-type]
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        await receiver.close()


@dataclass
class DaemonProcess:
    """The real `convoyd serve` as a child process."""

    data_dir: Path
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, timeout: float = 20.0) -> Running:
        run_file = self.data_dir / RUN_FILE
        run_file.unlink(missing_ok=True)
        self.log_path = self.data_dir.parent / f"daemon-{time.monotonic_ns()}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "convoyd.cli", "serve", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not run_file.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"convoyd exited early:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"convoyd did not start within {timeout}s:\n{self.log()}")
            time.sleep(0.02)
        info = json.loads(run_file.read_text())
        return Running(
            grpc_target=info["grpc"],
            http_url=f"http://{info['http']}",
            data_dir=self.data_dir,
            token=(self.data_dir / "admin.token").read_text().strip(),
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc = None
        return code


def daemon_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOYD_")}
    env.update(
        {
            "CONVOYD_DATA_DIR": str(data_dir),
            "CONVOYD_GRPC_LISTEN": "127.0.0.1:0",
            "CONVOYD_HTTP_LISTEN": "127.0.0.1:0",
            # DaemonProcess.stop blocks the test's loop (and so its receivers): a short grace
            # keeps a stop from waiting long on attempts those receivers cannot answer.
            "CONVOYD_SHUTDOWN_GRACE": "3",
            **extra,
        }
    )
    if STORE.dsn is not None and "CONVOYD_STORE" not in extra:
        env["CONVOYD_STORE"] = STORE.name
        env.setdefault("CONVOYD_POSTGRES_DSN", STORE.dsn)
    return env


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A not-yet-started `convoyd serve` configured through CONVOYD_* variables; killed after."""
    data_dir = tmp_path / "data"
    process = DaemonProcess(data_dir=data_dir, env=daemon_env(data_dir))
    try:
        yield process
    finally:
        if process.proc is not None and process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


def record_figures(name: str, figures: dict[str, object]) -> None:
    """Keeps a test's figures in $CONVOYD_FIGURES_DIR/<name>.json (``make reliability``)."""
    directory = os.environ.get("CONVOYD_FIGURES_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / f"{name}.json").write_text(json.dumps(figures, indent=2))
