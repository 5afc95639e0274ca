"""A throwaway PostgreSQL server on a loopback port for the tests and the benchmarks.

``PostgresServer().start()`` runs initdb in a fresh temporary directory and starts the server
on a free 127.0.0.1 port, trust authentication, user ``postgres``; ``stop()`` removes it all.
``stop_only()`` and ``start_again()`` take it down and bring it back on the same port and data.

``PostgresServer.from_env()`` honours ``CONVOYD_TEST_POSTGRES_DSN``: a libpq URI of a server
where the caller may CREATE DATABASE. Then no server is started: databases are made there,
each name with a random suffix, and ``stop()`` drops them.

No pytest here: benchmarks/bench.py uses this module too.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import asyncpg

EXTERNAL_DSN_VARIABLE = "CONVOYD_TEST_POSTGRES_DSN"
SUPERUSER = "postgres"
# Tests never survive an OS crash, so durability against one buys nothing; synchronous_commit
# stays on, since a store's commit path is part of what the tests exercise.
SERVER_SETTINGS: tuple[tuple[str, str], ...] = (
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "400"),
    ("shared_buffers", "128MB"),
)
_PORT_ATTEMPTS = 5
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,50}")
_T = TypeVar("_T")


class PostgresServerError(RuntimeError):
    """The server could not be set up, started or stopped; the message carries its output."""


def find_bindir() -> Path:
    """The directory of initdb, pg_ctl and postgres: the newest /usr/lib/postgresql/<v>/bin."""
    versions = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "initdb").exists() and path.parent.name.isdigit()
    ]
    if versions:
        return max(versions, key=lambda path: int(path.parent.name))
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found and (Path(found) / "initdb").exists():
            return Path(found)
    raise PostgresServerError(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `make pytest`"
        f" installs it, or set {EXTERNAL_DSN_VARIABLE} to a server the tests may use"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_blocking(make: Callable[[], Awaitable[_T]]) -> _T:
    """Runs a coroutine to completion in its own loop, so callers inside a running loop can too."""

    async def main() -> _T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def with_database(dsn: str, database: str) -> str:
    """The libpq URI ``dsn`` pointed at another database (host, user, options kept)."""
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database)))


async def _execute(dsn: str, *statements: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


class PostgresServer:
    """One PostgreSQL server for a test session or a benchmark run (see the module docstring)."""

    def __init__(
        self,
        *,
        external_dsn: str | None = None,
        bindir: Path | None = None,
        settings: Mapping[str, str] | None = None,
        parent: Path | None = None,
    ) -> None:
        self.external_dsn = external_dsn or None
        # Where the data directory is made (None: the system's temporary directory).
        self.parent = parent
        # Server settings over SERVER_SETTINGS (a benchmark wants a durable server).
        self.settings = {**dict(SERVER_SETTINGS), **(settings or {})}
        self._bindir = bindir
        self._base: Path | None = None
        self._port: int | None = None
        self._running = False
        # The name a caller asked for → the database made for it (suffixed on an external server).
        self._databases: dict[str, str] = {}

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] = os.environ,
        *,
        settings: Mapping[str, str] | None = None,
        parent: Path | None = None,
    ) -> PostgresServer:
        return cls(external_dsn=env.get(EXTERNAL_DSN_VARIABLE), settings=settings, parent=parent)

    @property
    def managed(self) -> bool:
        """True when this object runs the server (it can stop and restart it)."""
        return self.external_dsn is None

    @property
    def port(self) -> int:
        if self.external_dsn is not None:
            return urllib.parse.urlsplit(self.external_dsn).port or 5432
        if self._port is None:
            raise PostgresServerError("the server has not been started")
        return self._port

    @property
    def data_dir(self) -> Path:
        if self._base is None:
            raise PostgresServerError("the server has not been started")
        return self._base / "data"

    def dsn(self, database: str = SUPERUSER) -> str:
        name = self._databases.get(database, database)
        if self.external_dsn is not None:
            return with_database(self.external_dsn, name)
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def start(self) -> PostgresServer:
        if self.external_dsn is not None:
            run_blocking(lambda: _execute(self.dsn_admin(), "SELECT 1"))
            return self
        if self._base is not None:
            raise PostgresServerError("the server was started already")
        bindir = self._bindir or find_bindir()
        self._bindir = bindir
        self._base = Path(tempfile.mkdtemp(prefix="convoyd-pg-", dir=self.parent))
        atexit.register(self.stop)
        try:
            if os.geteuid() == 0:
                shutil.chown(self._base, user=SUPERUSER, group=SUPERUSER)
            self._initdb()
            for attempt in range(_PORT_ATTEMPTS):
                self._port = free_port()
                # Another process may take the port between free_port() and the server's bind.
                if self._pg_ctl_start(retry_on_port_taken=attempt + 1 < _PORT_ATTEMPTS):
                    break
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops the server (or drops the databases made on an external one) and cleans up."""
        if self.external_dsn is not None:
            names = list(self._databases.values())
            self._databases.clear()
            if names:
                drops = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names]
                run_blocking(lambda: _execute(self.dsn_admin(), *drops))
            return
        atexit.unregister(self.stop)
        try:
            if self._running:
                try:
                    self.stop_only("fast")
                except PostgresServerError:
                    self.stop_only("immediate")
        finally:
            self._running = False
            if self._base is not None:
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None
            self._databases.clear()

    def stop_only(self, mode: str = "fast") -> None:
        """Stops the server (pg_ctl -m smart|fast|immediate) but keeps its data and port."""
        self._require_managed()
        if not self._running:
            raise PostgresServerError("the server is not running")
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data_dir))
        self._running = False

    def start_again(self) -> None:
        """Starts a server stopped by stop_only() on the same port, with the same data."""
        self._require_managed()
        if self._running or self._base is None:
            raise PostgresServerError("start_again() follows stop_only()")
        self._pg_ctl_start(retry_on_port_taken=False)

    def restart(self, mode: str = "immediate") -> None:
        """Takes the server down (immediate: as if it crashed) and brings it back."""
        self.stop_only(mode)
        self.start_again()

    def create_database(self, name: str, *, template: str = "template0") -> str:
        """Creates a database and returns its URI; callable from inside a running event loop.

        template0 by default: it holds what template1 holds on a fresh server, but no session
        (autovacuum's included) ever connects to it, and CREATE DATABASE waits, in 100 ms
        steps, for every session on its template to leave.
        """
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} is not [a-z_][a-z0-9_]*")
        if name in self._databases:
            raise PostgresServerError(f"database {name} was created already")
        actual = name if self.managed else f"{name}_{secrets.token_hex(4)}"
        statement = (
            f'CREATE DATABASE "{actual}" TEMPLATE "{self._databases.get(template, template)}"'
        )
        run_blocking(lambda: _execute(self.dsn_admin(), statement))
        self._databases[name] = actual
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drops a database made by create_database(), closing any connection still on it."""
        actual = self._databases.pop(name)
        statement = f'DROP DATABASE IF EXISTS "{actual}" WITH (FORCE)'
        run_blocking(lambda: _execute(self.dsn_admin(), statement))

    def dsn_admin(self) -> str:
        """Where CREATE/DROP DATABASE are run from (the external URI as given)."""
        return self.external_dsn if self.external_dsn is not None else self.dsn(SUPERUSER)

    def _require_managed(self) -> None:
        if not self.managed:
            raise PostgresServerError(f"an external server ({EXTERNAL_DSN_VARIABLE}) is not ours")

    def _initdb(self) -> None:
        args = ["--auth=trust", f"--username={SUPERUSER}", "--encoding=UTF8", "--no-sync"]
        try:
            self._run("initdb", *args, "--locale=C.UTF-8", "-D", str(self.data_dir))
        except PostgresServerError:
            # Systems without the C.UTF-8 locale; C sorts the same (by code point).
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._run("initdb", *args, "--locale=C", "-D", str(self.data_dir))

    def _pg_ctl_start(self, *, retry_on_port_taken: bool) -> bool:
        assert self._base is not None
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self._base}",
            *(f"-c {key}={value}" for key, value in self.settings.items()),
        ]
        log = self._base / "server.log"
        seen = log.stat().st_size if log.exists() else 0
        try:
            self._run(
                "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
                "-l", str(log), "-o", " ".join(options),
            )  # fmt: skip
        except PostgresServerError as error:
            with open(log, "rb") as file:
                file.seek(seen)
                tail = file.read().decode(errors="replace")
            if retry_on_port_taken and "Address already in use" in tail:
                return False
            raise PostgresServerError(f"{error}\n{tail}") from None
        self._running = True
        return True

    def _run(self, program: str, *args: str) -> None:
        assert self._bindir is not None and self._base is not None
        command = [str(self._bindir / program), *args]
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root.
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        # PG* variables of the caller's environment (PGDATA, PGPORT, PGOPTIONS) would steer it.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        done = subprocess.run(
            command, cwd=self._base, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise PostgresServerError(
                f"{program} {' '.join(args[:2])} failed ({done.returncode}):"
                f"\n{done.stdout}{done.stderr}"
            )


async def lock_waiters(conn: asyncpg.Connection, count: int) -> None:
    """Returns once ``count`` other sessions of this database wait for a lock (a test that
    makes a transaction wait behind one it holds open, then lets it go)."""
    for _ in range(1000):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} sessions came to wait for a lock")
