"""The recorder keeps storing outcomes when one of them cannot be stored."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from convoyd.core.model import Attempt, AttemptResult, Delivery, DeliveryStatus
from convoyd.delivery.recorder import Recorder
from convoyd.errors import UnavailableError
from convoyd.store.base import AttemptRecord


def delivery(n: int) -> Delivery:
    return Delivery(
        id=f"dl_{n}",
        event_id="ev_1",
        endpoint_id="ep_1",
        owner_id="",
        event_type="t",
        status=DeliveryStatus.SUCCESS,
        status_reason="HTTP 200",
        attempt_count=1,
        next_attempt_at=None,
        last_attempt_at=1.0,
        last_http_status=200,
        created_at=0.0,
        updated_at=1.0,
    )


class PickyStore:
    """Refuses any batch holding dl_2 (as an integrity error would); unavailable once first."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.unavailable_once = True

    async def record(self, batch: Sequence[AttemptRecord]) -> None:
        if self.unavailable_once:
            self.unavailable_once = False
            raise UnavailableError("busy")
        if any(r.delivery.id == "dl_2" for r in batch):
            raise ValueError("constraint failed")
        self.stored.extend(r.delivery.id for r in batch)


async def test_a_bad_record_is_dropped_alone_and_passing_errors_are_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = PickyStore()
    recorder = Recorder(store)  # type: ignore[arg-type]
    published: list[str] = []
    recorder.add_listener(lambda changed: published.extend(d.id for d in changed))
    recorder.start()
    for n in (1, 2, 3):
        recorder.record(AttemptRecord(attempt=None, delivery=delivery(n)))
    await recorder.flush()
    await recorder.stop()
    assert store.stored == ["dl_1", "dl_3"]
    assert published == ["dl_1", "dl_3"]
    assert "dropping the outcome of delivery dl_2" in caplog.text


def outcome(d: Delivery) -> AttemptRecord:
    attempt = Attempt(
        id=f"at_{d.id[3:]}_1",
        delivery_id=d.id,
        number=1,
        result=AttemptResult.SUCCESS,
        started_at=1.0,
        duration=0.01,
        request_url="http://127.0.0.1:1/",
        request_headers=(),
        response_status=200,
        response_headers=(),
        response_body=b"",
        response_body_truncated=False,
        error="",
        remote_address="127.0.0.1:1",
    )
    return AttemptRecord(attempt=attempt, delivery=d)


class ListStore:
    def __init__(self) -> None:
        self.stored: list[tuple[str, DeliveryStatus]] = []
        self.changed = asyncio.Event()

    async def record(self, batch: Sequence[AttemptRecord]) -> None:
        self.stored.extend((r.delivery.id, r.delivery.status) for r in batch)
        self.changed.set()


async def test_processing_is_written_only_for_attempts_still_running_after_the_delay() -> None:
    store = ListStore()
    now = [100.0]
    recorder = Recorder(store, clock=lambda: now[0], processing_after=0.05)  # type: ignore[arg-type]
    recorder.start()
    fast, slow = delivery(1), delivery(2)
    recorder.started(dataclasses.replace(fast, status=DeliveryStatus.SCHEDULED), now[0])
    recorder.started(dataclasses.replace(slow, status=DeliveryStatus.SCHEDULED), now[0])
    recorder.record(outcome(fast))  # at once
    await recorder.flush()
    assert store.stored == [("dl_1", DeliveryStatus.SUCCESS)]  # never PROCESSING

    now[0] += 0.05  # the slow one is now due to show as PROCESSING
    store.changed.clear()
    await asyncio.wait_for(store.changed.wait(), 5)
    assert store.stored[-1] == ("dl_2", DeliveryStatus.PROCESSING)

    recorder.record(outcome(slow))
    await recorder.flush()
    await recorder.stop()
    assert store.stored == [
        ("dl_1", DeliveryStatus.SUCCESS),
        ("dl_2", DeliveryStatus.PROCESSING),
        ("dl_2", DeliveryStatus.SUCCESS),
    ]
