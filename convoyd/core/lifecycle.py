"""What a delivery becomes after one attempt: success, another try later, or failure."""

from __future__ import annotations

import dataclasses
import random

from convoyd.core.model import Delivery, DeliveryStatus, RetryPolicy
from convoyd.core.outcome import Outcome, Verdict
from convoyd.core.retry import next_delay


def after_attempt(
    delivery: Delivery,
    outcome: Outcome,
    *,
    policy: RetryPolicy,
    status_code: int,
    now: float,
    rng: random.Random,
) -> Delivery:
    """The delivery after its attempt number ``delivery.attempt_count + 1`` ended in ``outcome``.

    A manual retry or resend (``attempt_limit`` set) gets exactly its one attempt. Otherwise the
    endpoint's retry policy picks the next time; a Retry-After the endpoint asked for (429/503)
    is honoured by waiting at least that long.
    """
    count = delivery.attempt_count + 1
    base = dataclasses.replace(
        delivery,
        attempt_count=count,
        last_attempt_at=now,
        last_http_status=status_code,
        updated_at=now,
    )
    if outcome.verdict is Verdict.SUCCESS:
        return dataclasses.replace(
            base, status=DeliveryStatus.SUCCESS, status_reason=outcome.reason, next_attempt_at=None
        )
    if outcome.verdict is Verdict.GONE:
        return dataclasses.replace(
            base,
            status=DeliveryStatus.FAILURE,
            status_reason=f"{outcome.reason}: the endpoint is gone",
            next_attempt_at=None,
        )
    delay = None
    if delivery.attempt_limit is None or count < delivery.attempt_limit:
        delay = next_delay(policy, count if delivery.attempt_limit is None else 1, rng)
    if delay is None:
        return dataclasses.replace(
            base,
            status=DeliveryStatus.FAILURE,
            status_reason=f"{outcome.reason}; no attempts left",
            next_attempt_at=None,
        )
    if outcome.retry_after is not None:
        delay = max(delay, outcome.retry_after)
    return dataclasses.replace(
        base, status=DeliveryStatus.RETRY, status_reason=outcome.reason, next_attempt_at=now + delay
    )
