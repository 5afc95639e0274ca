"""convoyctl cluster status: the node table, the shard line and --json (a daemon on loopback)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2

from convoyd import __version__
from convoyd.ctl.cli import build_parser, client_from_args, run
from convoyd.ctl.cluster import age_text, show_status
from convoyd.ctl.render import Output
from convoyd.v1 import cluster_pb2
from tests.conftest import Running

T = 1_700_000_000  # 2023-11-14T22:13:20Z


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CONVOYD_TOKEN", "CONVOYD_DATA_DIR", "CONVOYD_GRPC_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


async def invoke(*argv: str) -> tuple[int, str, str]:
    """Runs convoyctl in this event loop (main() would start its own); returns code, out, err."""
    args = build_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = await run(client_from_args(args), args, Output(as_json=args.json, out=out, err=err))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.9, "0s"),
        (12, "12s"),
        (60, "1m0s"),
        (75, "1m15s"),
        (3600, "1h0m"),
        (7300, "2h1m"),
        (90000, "1d1h"),
        (-3, "0s"),
    ],
)
def test_age_text(seconds: float, text: str) -> None:
    assert age_text(seconds) == text


def node(node_id: str, shards: int, *, alive: bool, beat: int) -> cluster_pb2.Node:
    return cluster_pb2.Node(
        node_id=node_id,
        grpc_address=f"{node_id}.invalid:1",
        http_address=f"{node_id}.invalid:2",
        shards=shards,
        started_at=timestamp_pb2.Timestamp(seconds=T),
        heartbeat_at=timestamp_pb2.Timestamp(seconds=beat),
        version="0.2.0",
        alive=alive,
    )


def test_the_table_shows_every_node_and_the_shard_count() -> None:
    response = cluster_pb2.ListNodesResponse(
        nodes=[
            node("a", 9, alive=True, beat=T + 100),
            node("b", 7, alive=True, beat=T + 98),
            node("c", 0, alive=False, beat=T),
        ],
        total_shards=16,
    )
    out, err = io.StringIO(), io.StringIO()
    show_status(Output(as_json=False, out=out, err=err), response, clock=lambda: T + 101.5)
    assert out.getvalue().splitlines() == [
        "NODE  GRPC         HTTP         SHARDS  ALIVE  HEARTBEAT  VERSION  STARTED",
        "a     a.invalid:1  a.invalid:2  9       yes    1s ago     0.2.0    2023-11-14T22:13:20Z",
        "b     b.invalid:1  b.invalid:2  7       yes    3s ago     0.2.0    2023-11-14T22:13:20Z",
        "c     c.invalid:1  c.invalid:2  0       no     1m41s ago  0.2.0    2023-11-14T22:13:20Z",
        "total shards: 16",
    ]
    assert err.getvalue() == ""


async def test_status_against_the_daemon(app: Running) -> None:
    code, out, err = await invoke(
        "--target", app.grpc_target, "--token", app.token, "cluster", "status"
    )
    assert code == 0, err
    header, row, total = out.splitlines()
    assert header.split() == [
        "NODE",
        "GRPC",
        "HTTP",
        "SHARDS",
        "ALIVE",
        "HEARTBEAT",
        "VERSION",
        "STARTED",
    ]
    cells = row.split()
    assert cells[:5] == ["local", app.grpc_target, app.http_url.removeprefix("http://"), "0", "yes"]
    assert cells[5].endswith("s") and cells[6] == "ago"
    assert cells[7] == __version__
    assert cells[8].endswith("Z")
    assert total == "total shards: 0"


async def test_status_json_is_the_response(app: Running) -> None:
    code, out, err = await invoke(
        "--target", app.grpc_target, "--token", app.token, "cluster", "status", "--json"
    )
    assert code == 0, err
    got = json.loads(out)
    [local] = got["nodes"]
    assert local["nodeId"] == "local"
    assert local["grpcAddress"] == app.grpc_target
    assert local["alive"] is True
    assert local["version"] == __version__
    assert local["startedAt"].endswith("Z") and local["heartbeatAt"].endswith("Z")
    # Proto3 JSON leaves out zero values, as every convoyctl --json output does.
    assert "totalShards" not in got and "shards" not in local


async def test_status_without_a_token_exits_1(app: Running) -> None:
    code, out, err = await invoke("--target", app.grpc_target, "cluster", "status")
    assert code == 1
    assert out == ""
    assert err.startswith("convoyctl: UNAUTHENTICATED: ")
