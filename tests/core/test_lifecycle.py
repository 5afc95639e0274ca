"""after_attempt: one row per way an attempt can end."""

from __future__ import annotations

import dataclasses
import random

import pytest

from convoyd.core.lifecycle import after_attempt
from convoyd.core.model import Delivery, DeliveryStatus, RetryPolicy, RetryStrategy
from convoyd.core.outcome import Outcome, Verdict

NOW = 1_000_000.0
NO_JITTER = RetryPolicy(jitter=0.0)
LINEAR_2 = RetryPolicy(strategy=RetryStrategy.LINEAR, interval=10.0, max_retries=2, jitter=0.0)


def delivery(attempts: int = 0, limit: int | None = None) -> Delivery:
    return Delivery(
        id="dl_1",
        event_id="ev_1",
        endpoint_id="ep_1",
        owner_id="",
        event_type="t",
        status=DeliveryStatus.SCHEDULED,
        status_reason="",
        attempt_count=attempts,
        next_attempt_at=NOW,
        last_attempt_at=None,
        last_http_status=0,
        created_at=NOW - 10,
        updated_at=NOW - 10,
        attempt_limit=limit,
    )


OK = Outcome(Verdict.SUCCESS, None, "HTTP 200")
FAIL = Outcome(Verdict.RETRY, None, "HTTP 500")
GONE = Outcome(Verdict.GONE, None, "HTTP 410")
THROTTLED = Outcome(Verdict.RETRY, 600.0, "HTTP 429")


@pytest.mark.parametrize(
    ("before", "outcome", "policy", "status", "delay"),
    [
        (delivery(), OK, NO_JITTER, DeliveryStatus.SUCCESS, None),
        (delivery(), FAIL, NO_JITTER, DeliveryStatus.RETRY, 5.0),  # Standard Webhooks: 5 s
        (delivery(1), FAIL, NO_JITTER, DeliveryStatus.RETRY, 300.0),  # then 5 min
        (delivery(7), FAIL, NO_JITTER, DeliveryStatus.FAILURE, None),  # 8th attempt was the last
        (delivery(), GONE, NO_JITTER, DeliveryStatus.FAILURE, None),
        (delivery(), THROTTLED, NO_JITTER, DeliveryStatus.RETRY, 600.0),  # Retry-After wins
        (delivery(1), FAIL, LINEAR_2, DeliveryStatus.RETRY, 10.0),
        (delivery(2), FAIL, LINEAR_2, DeliveryStatus.FAILURE, None),
        (
            delivery(3, limit=4),
            FAIL,
            NO_JITTER,
            DeliveryStatus.FAILURE,
            None,
        ),  # manual retry: one try
        (delivery(3, limit=4), OK, NO_JITTER, DeliveryStatus.SUCCESS, None),
    ],
)
def test_after_attempt(
    before: Delivery,
    outcome: Outcome,
    policy: RetryPolicy,
    status: DeliveryStatus,
    delay: float | None,
) -> None:
    after = after_attempt(
        before, outcome, policy=policy, status_code=500, now=NOW, rng=random.Random(1)
    )
    assert after.status is status
    assert after.attempt_count == before.attempt_count + 1
    assert after.last_attempt_at == NOW and after.last_http_status == 500
    if delay is None:
        assert after.next_attempt_at is None
    else:
        assert after.next_attempt_at == pytest.approx(NOW + delay)
    assert outcome.reason in after.status_reason
    # Everything the attempt does not change is kept as it was.
    unchanged = dataclasses.replace(
        before,
        status=after.status,
        status_reason=after.status_reason,
        attempt_count=after.attempt_count,
        next_attempt_at=after.next_attempt_at,
        last_attempt_at=after.last_attempt_at,
        last_http_status=after.last_http_status,
        updated_at=after.updated_at,
    )
    assert after == unchanged
    assert after.updated_at == NOW
