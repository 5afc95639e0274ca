"""What a delivery becomes after one attempt: success, another try later, or failure."""

from __future__ import annotations

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

    def after(status: DeliveryStatus, reason: str, next_at: float | None) -> Delivery:
        # One constructor call, not dataclasses.replace: this runs once per attempt.
        return Delivery(
            id=delivery.id,
            event_id=delivery.event_id,
            endpoint_id=delivery.endpoint_id,
            owner_id=delivery.owner_id,
            event_type=delivery.event_type,
            status=status,
            status_reason=reason,
            attempt_count=count,
            next_attempt_at=next_at,
            last_attempt_at=now,
            last_http_status=status_code,
            created_at=delivery.created_at,
            updated_at=now,
            attempt_limit=delivery.attempt_limit,
        )

    if outcome.verdict is Verdict.SUCCESS:
        return after(DeliveryStatus.SUCCESS, outcome.reason, None)
    if outcome.verdict is Verdict.GONE:
        return after(DeliveryStatus.FAILURE, f"{outcome.reason}: the endpoint is gone", None)
    delay = None
    if delivery.attempt_limit is None or count < delivery.attempt_limit:
        delay = next_delay(policy, count if delivery.attempt_limit is None else 1, rng)
    if delay is None:
        return after(DeliveryStatus.FAILURE, f"{outcome.reason}; no attempts left", None)
    if outcome.retry_after is not None:
        delay = max(delay, outcome.retry_after)
    return after(DeliveryStatus.RETRY, outcome.reason, now + delay)
