"""The throwaway PostgreSQL server of tests/pgserver.py and the both_stores parametrisation."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests import pgserver
from tests.conftest import current_store, daemon_env, loopback_settings
from tests.pgserver import PostgresServer, PostgresServerError

# A developer who points the tests at a server of their own may have no PostgreSQL installed.
needs_local_postgres = pytest.mark.skipif(
    not list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    and bool(os.environ.get(pgserver.EXTERNAL_DSN_VARIABLE)),
    reason="no local PostgreSQL; the tests use $CONVOYD_TEST_POSTGRES_DSN",
)


async def fetch_value(dsn: str, query: str) -> object:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def execute(dsn: str, script: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(script)
    finally:
        await connection.close()


async def refuses(dsn: str) -> bool:
    try:
        await fetch_value(dsn, "SELECT 1")
    except OSError:
        return True
    return False


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own, since the test stops and restarts it."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@needs_local_postgres
async def test_start_serves_on_loopback_and_stop_removes_everything(
    own_server: PostgresServer,
) -> None:
    dsn = own_server.dsn()
    assert dsn == f"postgresql://postgres@127.0.0.1:{own_server.port}/postgres"
    assert await fetch_value(dsn, "SHOW fsync") == "off"
    assert await fetch_value(dsn, "SHOW synchronous_commit") == "on"
    assert await fetch_value(dsn, "SHOW max_connections") == "400"
    assert await fetch_value(dsn, "SHOW server_encoding") == "UTF8"
    base = own_server.data_dir.parent
    own_server.stop()
    assert not base.exists()
    assert await refuses(dsn)


async def test_create_database_inside_a_running_loop(postgres_server: PostgresServer) -> None:
    dsn = postgres_server.create_database("pgserver_created")
    try:
        assert dsn == postgres_server.dsn("pgserver_created")
        assert await fetch_value(dsn, "SELECT current_database()") == (dsn.rsplit("/", 1)[1])
    finally:
        postgres_server.drop_database("pgserver_created")
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await fetch_value(dsn, "SELECT 1")


async def test_postgres_dsn_is_a_fresh_database(postgres_dsn: str) -> None:
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    assert await fetch_value(postgres_dsn, tables) == 0
    await execute(postgres_dsn, "CREATE TABLE t (x int)")
    assert await fetch_value(postgres_dsn, tables) == 1


@needs_local_postgres
async def test_stop_only_and_start_again_keep_data_and_port(own_server: PostgresServer) -> None:
    dsn = own_server.create_database("kept")
    port = own_server.port
    await execute(dsn, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)")
    own_server.stop_only("immediate")
    assert await refuses(dsn)
    with pytest.raises(PostgresServerError):
        own_server.stop_only()
    own_server.start_again()
    assert own_server.port == port
    assert await fetch_value(dsn, "SELECT x FROM t") == 42
    own_server.restart()
    assert await fetch_value(dsn, "SELECT x FROM t") == 42


@needs_local_postgres
def test_start_retries_when_the_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr(pgserver, "free_port", lambda: next(ports, None) or socket_port())
        server = PostgresServer().start()
        try:
            assert server.port != taken.getsockname()[1]
        finally:
            server.stop()


def socket_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_external_server_databases_are_suffixed_and_dropped(
    postgres_server: PostgresServer,
) -> None:
    external = PostgresServer(external_dsn=postgres_server.dsn()).start()
    dsn = external.create_database("ext")
    name = dsn.rsplit("/", 1)[1]
    assert name.startswith("ext_") and name != "ext"
    assert await fetch_value(dsn, "SELECT current_database()") == name
    with pytest.raises(PostgresServerError):
        external.restart()
    external.stop()
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await fetch_value(dsn, "SELECT 1")


@pytest.mark.both_stores
async def test_both_stores_point_convoyd_at_the_backend(
    store_backend: str, store_dsn: str | None, tmp_path: Path
) -> None:
    settings = loopback_settings(tmp_path)
    env = daemon_env(tmp_path)
    assert settings.store == store_backend
    assert current_store() == (store_backend, store_dsn)
    if store_backend == "postgres":
        assert store_dsn is not None
        assert settings.postgres.dsn == store_dsn
        assert env["CONVOYD_STORE"] == "postgres"
        assert env["CONVOYD_POSTGRES_DSN"] == store_dsn
        assert await fetch_value(store_dsn, "SELECT 1") == 1
        # The caller's own choice of store wins.
        assert loopback_settings(tmp_path, store="sqlite").store == "sqlite"
        own = daemon_env(tmp_path, CONVOYD_STORE="sqlite")
        assert own["CONVOYD_STORE"] == "sqlite" and "CONVOYD_POSTGRES_DSN" not in own
    else:
        assert store_dsn is None
        assert "CONVOYD_STORE" not in env


def test_both_stores_yields_both_ids(request: pytest.FixtureRequest) -> None:
    module = request.node.getparent(pytest.Module)
    assert module is not None
    names = {item.name for item in module.collect()}
    assert {
        "test_both_stores_point_convoyd_at_the_backend[sqlite]",
        "test_both_stores_point_convoyd_at_the_backend[postgres]",
    } <= names
    assert "test_both_stores_yields_both_ids" in names


def test_unmarked_tests_stay_on_sqlite(store_backend: str, tmp_path: Path) -> None:
    assert store_backend == "sqlite"
    assert current_store() == ("sqlite", None)
    assert loopback_settings(tmp_path).store == "sqlite"
