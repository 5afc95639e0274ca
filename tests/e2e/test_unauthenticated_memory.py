"""Callers without a valid token cost the real `convoyd serve` no memory, whatever they send.

The token is checked from the metadata, before the message is read: oversized, maximum-sized
and malformed bodies are all refused UNAUTHENTICATED and never buffered or parsed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from convoyd.listeners import receive_limit
from convoyd.settings import DeliverySettings
from tests.conftest import DaemonProcess

pytestmark = pytest.mark.e2e

MB = 1000 * 1000
LIMIT = receive_limit(DeliverySettings())
METHODS = ("/convoyd.v1.EventService/CreateEvent", "/convoyd.v1.EventService/BatchCreateEvents")
NO_TOKEN: tuple[tuple[str, str], ...] = ()
BAD_TOKEN = (("authorization", "Bearer cvd_not-a-real-token"),)


def rss(pid: int, field: str = "VmRSS") -> int:
    """Bytes of the process's resident memory (``VmRSS``) or its peak (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


async def refused(channel: grpc.aio.Channel, method: str, body: bytes, metadata: object) -> str:
    """The status of one raw call (identity serialisers: the bytes go out as they are)."""
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        await call(body, metadata=metadata, timeout=60)
    except grpc.aio.AioRpcError as exc:
        return str(exc.code().name)
    return "OK"


async def test_oversized_unauthenticated_calls_leave_rss_flat(daemon: DaemonProcess) -> None:
    running = daemon.start()
    assert daemon.proc is not None
    pid = daemon.proc.pid
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    # Garbage that is not protobuf (a field tag of 0), at the limit, one byte over, and at
    # the 64 MiB the daemon used to accept.
    bodies = {
        "limit": b"\x00" * LIMIT,
        "over": b"\x00" * (LIMIT + 1),
        "old-limit": b"\x00" * (64 * 1024 * 1024),
    }
    async with grpc.aio.insecure_channel(running.grpc_target, options=options) as channel:
        # Warm up: grpc's threads and pools exist before the baseline is taken.
        for method in METHODS:
            assert await refused(channel, method, b"\xff", NO_TOKEN) == "UNAUTHENTICATED"
        before = rss(pid)
        codes: list[str] = []
        for wave in range(8):
            size = ("limit", "over")[wave % 2]
            calls = [
                refused(channel, METHODS[i % 2], bodies[size], (NO_TOKEN, BAD_TOKEN)[i % 2])
                for i in range(10)
            ]
            codes += await asyncio.gather(*calls)
        codes += await asyncio.gather(
            *(refused(channel, METHODS[0], bodies["old-limit"], NO_TOKEN) for _ in range(4))
        )
        after = rss(pid)
        peak = rss(pid, "VmHWM")
        # The daemon still serves afterwards.
        assert await refused(channel, METHODS[0], b"", running.metadata) == "INVALID_ARGUMENT"
    assert set(codes) == {"UNAUTHENTICATED"}, sorted(set(codes))
    assert len(codes) == 84
    assert after - before < 100 * MB, (before, after, peak)
    assert peak - before < 100 * MB, (before, after, peak)
    assert daemon.stop() == 0
