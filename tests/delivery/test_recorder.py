"""The recorder keeps storing outcomes when one of them cannot be stored."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from convoyd.core.model import Delivery, DeliveryStatus
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
