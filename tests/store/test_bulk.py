"""Multi-row statements: how rows are chunked, and ingest and outcomes written through them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from convoyd.core.model import (
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointSpec,
    EndpointStatus,
    Event,
)
from convoyd.errors import NotFoundError
from convoyd.store import bulk
from convoyd.store.base import AttemptRecord, IngestNeeds, IngestSnapshot, IngestWrite
from convoyd.store.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        (0, []),
        (1, [1]),
        (3, [2, 1]),
        (255, [128, 64, 32, 16, 8, 4, 2, 1]),
        (256, [256]),
        (600, [256, 256, 64, 16, 8]),
    ],
)
def test_chunk_sizes(count: int, sizes: list[int]) -> None:
    assert bulk.chunk_sizes(count) == sizes
    assert sum(sizes) == count


def test_statement_repeats_the_placeholder_group() -> None:
    assert bulk.statement("INSERT INTO t VALUES {values}", 2, 3) == (
        "INSERT INTO t VALUES (?,?),(?,?),(?,?)"
    )


ENDPOINT = Endpoint(
    id="ep_1",
    spec=EndpointSpec(url="http://127.0.0.1:9/hook"),
    status=EndpointStatus.ACTIVE,
    status_reason="created",
    status_changed_at=1.0,
    secrets=(),
    created_at=1.0,
    updated_at=1.0,
)


def write(n: int) -> IngestWrite:
    event = Event(
        id=f"ev_{n:05d}",
        event_type="order.paid",
        data=b'{"n": %d}' % n,
        idempotency_key="",
        endpoint_ids=(ENDPOINT.id,),
        owner_id="",
        headers={"X-N": str(n)} if n % 2 else {},
        created_at=10.0 + n,
        delivery_count=1,
    )
    delivery = Delivery(
        id=f"dl_{n:05d}",
        event_id=event.id,
        endpoint_id=ENDPOINT.id,
        owner_id="",
        event_type=event.event_type,
        status=DeliveryStatus.SCHEDULED,
        status_reason="",
        attempt_count=0,
        next_attempt_at=10.0 + n,
        last_attempt_at=None,
        last_http_status=0,
        created_at=10.0 + n,
        updated_at=10.0 + n,
    )
    return IngestWrite(event=event, payload_hash=b"", deliveries=[delivery])


def outcome(d: Delivery, number: int, status: DeliveryStatus, http: int) -> AttemptRecord:
    attempt = Attempt(
        id=f"at_{d.id[3:]}_{number}",
        delivery_id=d.id,
        number=number,
        result=AttemptResult.SUCCESS if http < 300 else AttemptResult.HTTP_ERROR,
        started_at=100.0 + number,
        duration=0.01,
        request_url=ENDPOINT.spec.url,
        request_headers=(("webhook-id", d.id),),
        response_status=http,
        response_headers=(("Server", "test"),),
        response_body=b"\x00\xffbinary",
        response_body_truncated=False,
        error="",
        remote_address="127.0.0.1",
    )
    after = dataclasses.replace(
        d,
        status=status,
        attempt_count=number,
        last_http_status=http,
        last_attempt_at=100.0 + number,
        next_attempt_at=200.0 if status is DeliveryStatus.RETRY else None,
        updated_at=100.0 + number,
    )
    return AttemptRecord(attempt=attempt, delivery=after)


async def test_ingest_and_outcomes_across_chunks(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        await store.insert_endpoint(ENDPOINT)
        writes = [write(n) for n in range(300)]  # a full chunk and a remainder

        def build(reader: IngestSnapshot) -> list[IngestWrite]:
            return writes

        await store.ingest(IngestNeeds(), build)
        for w in (writes[0], writes[257], writes[299]):
            assert await store.get_event(w.event.id) == w.event
            assert await store.get_delivery(w.deliveries[0].id) == w.deliveries[0]

        first, second = writes[0].deliveries[0], writes[1].deliveries[0]
        gone = dataclasses.replace(first, id="dl_gone")  # deleted while its attempt ran
        await store.record(
            [
                outcome(first, 1, DeliveryStatus.RETRY, 500),
                outcome(second, 1, DeliveryStatus.SUCCESS, 204),
                outcome(gone, 1, DeliveryStatus.SUCCESS, 204),
                outcome(first, 2, DeliveryStatus.SUCCESS, 200),  # the later change wins
            ]
        )
        assert (await store.get_delivery(first.id)).status is DeliveryStatus.SUCCESS
        assert (await store.get_delivery(first.id)).attempt_count == 2
        assert (await store.get_delivery(second.id)).status is DeliveryStatus.SUCCESS
        attempts = await store.list_attempts(first.id, after_number=0, limit=10)
        assert [a.number for a in attempts] == [1, 2]
        assert attempts[0] == outcome(first, 1, DeliveryStatus.RETRY, 500).attempt
        with pytest.raises(NotFoundError):
            await store.get_delivery("dl_gone")
        assert await store.list_attempts("dl_gone", after_number=0, limit=10) == []
    finally:
        await store.close()
