"""``convoyctl cluster ...``: the nodes serving this deployment and the shards they hold."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from convoyd.client import Client
from convoyd.ctl.registry import CommandSet
from convoyd.ctl.render import Column, Output, column
from convoyd.v1 import cluster_pb2

COMMANDS = CommandSet("cluster", help="show the nodes of the cluster")


def age_text(seconds: float) -> str:
    """12 → '12s', 75 → '1m15s', 7300 → '2h1m', 90000 → '1d1h'."""
    # A node's clock a little ahead of ours is not a heartbeat from the future.
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def node_columns(now: float) -> list[Column]:
    """The table's columns; the heartbeat's age is counted from ``now`` (seconds)."""

    def heartbeat_age(node: cluster_pb2.Node) -> str:
        if not node.HasField("heartbeat_at"):
            return ""
        beat = node.heartbeat_at.seconds + node.heartbeat_at.nanos / 1e9
        return f"{age_text(now - beat)} ago"

    return [
        column("NODE", "node_id"),
        column("GRPC", "grpc_address"),
        column("HTTP", "http_address"),
        column("SHARDS", "shards"),
        ("ALIVE", lambda node: "yes" if node.alive else "no"),
        ("HEARTBEAT", heartbeat_age),
        column("VERSION", "version"),
        column("STARTED", "started_at"),
    ]


def show_status(
    out: Output, response: cluster_pb2.ListNodesResponse, *, clock: Callable[[], float]
) -> None:
    """The nodes as a table and the shard count below it; in JSON, the response whole."""
    if out.as_json:
        out.resource(response)
        return
    out.listing(response.nodes, node_columns(clock()))
    out.line(f"total shards: {response.total_shards}")


@COMMANDS.command("status", help="list the nodes, their shards and heartbeats")
async def status(client: Client, args: argparse.Namespace, out: Output) -> int:
    show_status(out, await client.list_nodes(), clock=time.time)
    return 0
