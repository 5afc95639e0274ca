"""What the gRPC listener reads: the token first, then at most the largest valid request.

Bodies go out as raw bytes (identity serialisers), so a malformed body reaches the server as
sent. Without a valid token every body, malformed or oversized, is UNAUTHENTICATED; with one,
a malformed body is INVALID_ARGUMENT and one past the receive limit RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from convoyd.listeners import MAX_METADATA, REQUEST_ENVELOPE, receive_limit
from convoyd.settings import DeliverySettings
from convoyd.v1 import event_pb2
from tests.conftest import Running, running_app
from tests.control.test_auth_every_rpc import BAD_CREDENTIALS, METHODS, STREAMING

MALFORMED = [
    b"\xff",  # a truncated varint tag
    b"\x00" * 64,  # field number 0
    b"\x0a\xff\xff\xff\xff\x0f",  # a length far past the end
    b"\x1a\x02\xc3\x28",  # event_type (a string) that is not UTF-8
]
SMALL = DeliverySettings(sender_workers=0, max_payload_bytes=1000, max_batch_bytes=1024 * 1024)
SEND_ANY = [("grpc.max_send_message_length", -1)]


async def call(
    channel: grpc.aio.Channel, path: str, body: bytes, metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    try:
        if path in STREAMING:
            stream = channel.unary_stream(path)(body, metadata=metadata, timeout=10)
            async for _ in stream:
                break
            stream.cancel()
        else:
            await channel.unary_unary(path)(body, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("path", METHODS)
async def test_a_malformed_body_without_a_valid_token_is_unauthenticated(
    app: Running, path: str
) -> None:
    async with app.channel() as channel:
        for metadata in BAD_CREDENTIALS:
            for body in MALFORMED:
                code = await call(channel, path, body, metadata)
                assert code == grpc.StatusCode.UNAUTHENTICATED, (path, metadata, body)


async def test_a_malformed_body_with_the_token_is_invalid_argument(app: Running) -> None:
    async with app.channel() as channel:
        for path in ("/convoyd.v1.EventService/CreateEvent", "/convoyd.v1.EventService/GetEvent"):
            for body in MALFORMED[:3]:
                code = await call(channel, path, body, app.metadata)
                assert code == grpc.StatusCode.INVALID_ARGUMENT, (path, body)


def test_the_receive_limit_is_the_largest_batch_plus_one_envelope() -> None:
    assert receive_limit(SMALL) == 1024 * 1024 + REQUEST_ENVELOPE
    default = DeliverySettings()
    assert receive_limit(default) == default.max_batch_bytes + REQUEST_ENVELOPE
    assert receive_limit(default) < 64 * 1024 * 1024  # the limit before


async def test_past_the_receive_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    async with running_app(tmp_path / "data", delivery=SMALL) as (_, running):
        limit = receive_limit(SMALL)
        path = "/convoyd.v1.EventService/BatchCreateEvents"
        async with grpc.aio.insecure_channel(running.grpc_target, options=SEND_ANY) as channel:
            over = b"\x00" * (limit + 1)
            assert await call(channel, path, over, running.metadata) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            for metadata in BAD_CREDENTIALS:
                assert await call(channel, path, over, metadata) == (
                    grpc.StatusCode.UNAUTHENTICATED
                )
            # At the limit the message is read; garbage of that size is then malformed.
            at = b"\x00" * limit
            assert await call(channel, path, at, running.metadata) == (
                grpc.StatusCode.INVALID_ARGUMENT
            )


async def test_a_batch_up_to_max_batch_bytes_is_accepted(tmp_path: Path) -> None:
    async with (
        running_app(tmp_path / "data", delivery=SMALL) as (_, running),
        grpc.aio.insecure_channel(running.grpc_target, options=SEND_ANY) as channel,
    ):
        # A batch of full-sized payloads just under max_batch_bytes.
        batch = event_pb2.BatchCreateEventsRequest(
            requests=[
                event_pb2.CreateEventRequest(
                    owner_id="nobody", event_type="t", data=b'"' + b"x" * 990 + b'"'
                )
                for _ in range(1000)
            ]
        )
        assert batch.ByteSize() < SMALL.max_batch_bytes
        code = await call(
            channel,
            "/convoyd.v1.EventService/BatchCreateEvents",
            batch.SerializeToString(),
            running.metadata,
        )
        assert code == grpc.StatusCode.OK  # accepted (an owner without endpoints)


async def test_oversized_metadata_is_refused(app: Running) -> None:
    async with app.channel() as channel:
        metadata = (*app.metadata, ("x-padding", "p" * (MAX_METADATA + 1)))
        code = await call(channel, "/convoyd.v1.EventService/GetEvent", b"", metadata)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
