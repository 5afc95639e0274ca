"""The one status of an endpoint, table-driven: state, breaker and latest delivery read together."""

from __future__ import annotations

import re

import pytest

from convoyd.core.model import (
    BreakerStatus,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointSpec,
    EndpointStatus,
)
from convoyd.portal.status import endpoint_health

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def endpoint(status: EndpointStatus = EndpointStatus.ACTIVE) -> Endpoint:
    return Endpoint(
        id="ep_1",
        spec=EndpointSpec(url="https://hooks.example.invalid/in"),
        status=status,
        status_reason="",
        status_changed_at=NOW - 3600,
        secrets=(),
        created_at=NOW - 7200,
        updated_at=NOW - 3600,
    )


def breaker(
    state: str = "closed", rate: float = 0.0, attempts: int = 0, probe: float | None = None
) -> BreakerStatus:
    return BreakerStatus(
        state=state,
        failure_rate=rate,
        window_attempts=attempts,
        consecutive_trips=3,
        next_probe_at=probe,
    )


def last(status: DeliveryStatus) -> Delivery:
    return Delivery(
        id="dl_1",
        event_id="ev_1",
        endpoint_id="ep_1",
        owner_id="",
        event_type="t",
        status=status,
        status_reason="",
        attempt_count=1,
        next_attempt_at=None,
        last_attempt_at=NOW - 10,
        last_http_status=200,
        created_at=NOW - 20,
        updated_at=NOW - 10,
    )


CASES = [
    # (state, breaker, latest delivery, tone, words)
    (EndpointStatus.ACTIVE, breaker("open", 1.0, 9, NOW + 95), None, "bad",
     "Failing — paused by convoyd until 08:01 UTC (in 2 min), next try then"),
    (EndpointStatus.ACTIVE, breaker("open", 1.0, 9, NOW - 5), None, "bad",
     "Failing — paused by convoyd after failing; it tries again with the next delivery"),
    (EndpointStatus.ACTIVE, breaker("open", 1.0, 9, NOW + 86400), None, "bad",
     "Failing — paused by convoyd until 2027-01-16 08:00 UTC (in 24 h), next try then"),
    (EndpointStatus.ACTIVE, breaker("half_open"), None, "warn",
     "Recovering — convoyd is sending one delivery to test it; the rest wait"),
    (EndpointStatus.ACTIVE, breaker("closed", 0.0, 9), None, "ok",
     "Healthy — all 9 recent attempts succeeded"),
    (EndpointStatus.ACTIVE, breaker("closed", 2 / 9, 9), None, "warn",
     "Some failures — 7 of 9 recent attempts succeeded"),
    (EndpointStatus.ACTIVE, breaker("closed", 6 / 9, 9), None, "bad",
     "Failing — only 3 of 9 recent attempts succeeded"),
    (EndpointStatus.ACTIVE, breaker("closed", 0.5, 2), last(DeliveryStatus.SUCCESS), "warn",
     "Some failures — 1 of 2 recent attempts succeeded"),
    (EndpointStatus.ACTIVE, breaker("closed", 1.0, 9), None, "bad",
     "Failing — none of the 9 recent attempts succeeded"),
    (EndpointStatus.ACTIVE, breaker("closed", 1.0, 1), None, "bad",
     "Failing — the one recent attempt failed"),
    (EndpointStatus.ACTIVE, None, None, "idle", "Active — nothing sent to it yet"),
    (EndpointStatus.ACTIVE, breaker(), last(DeliveryStatus.SUCCESS), "ok",
     "Healthy — the latest delivery succeeded"),
    (EndpointStatus.ACTIVE, None, last(DeliveryStatus.FAILURE), "bad",
     "Failing — the latest delivery failed for good"),
    (EndpointStatus.ACTIVE, None, last(DeliveryStatus.RETRY), "warn",
     "Retrying — the latest delivery failed and is tried again"),
    (EndpointStatus.PAUSED, breaker("open", 1.0, 9, NOW + 60), None, "warn",
     "Paused — new events are recorded but not sent, and queued ones wait, until it is resumed"),
    (EndpointStatus.INACTIVE, breaker("open", 1.0, 9, NOW + 60), None, "bad",
     "Disabled — convoyd stopped sending after it kept failing; new events are recorded, not"
     " sent. Retry a failed delivery to test it again"),
    (EndpointStatus.PENDING, None, None, "warn",
     "Testing — one delivery is being sent to see whether it works again; the rest wait"),
]  # fmt: skip


@pytest.mark.parametrize(("state", "breaker_now", "latest", "tone", "words"), CASES)
def test_one_status_in_words(
    state: EndpointStatus,
    breaker_now: BreakerStatus | None,
    latest: Delivery | None,
    tone: str,
    words: str,
) -> None:
    health = endpoint_health(endpoint(state), breaker_now, latest, NOW)
    detail = re.sub(r"<[^>]+>", "", health.detail)
    assert (health.tone, f"{health.title} — {detail}") == (tone, words)
