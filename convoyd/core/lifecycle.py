"""What a delivery becomes: after one attempt (success, another try later, or failure), and
when someone asks for it to be sent again (RetryDelivery, ForceResendDelivery, a batch retry).
"""

from __future__ import annotations

import dataclasses
import random
from enum import StrEnum

from convoyd.core.model import Delivery, DeliveryStatus, RetryPolicy
from convoyd.core.outcome import Outcome, Verdict
from convoyd.core.retry import next_delay
from convoyd.errors import FailedPreconditionError

FAILURE = DeliveryStatus.FAILURE
DISCARDED = DeliveryStatus.DISCARDED
RETRY = DeliveryStatus.RETRY
SCHEDULED = DeliveryStatus.SCHEDULED
PROCESSING = DeliveryStatus.PROCESSING
SUCCESS = DeliveryStatus.SUCCESS


class Again(StrEnum):
    """What asks for a delivery to be sent outside its schedule."""

    RETRY = "retry"  # RetryDelivery, BatchRetryDeliveries
    RESEND = "resend"  # ForceResendDelivery


# (request, status) -> status after. Anything not listed is refused. A delivery that had ended
# gets one more attempt; one waiting for its next try (RETRY) has that try now ("retry now"),
# with its attempt count and the rest of its schedule kept.
AGAIN: dict[tuple[Again, DeliveryStatus], DeliveryStatus] = {
    (Again.RETRY, FAILURE): SCHEDULED,
    (Again.RETRY, DISCARDED): SCHEDULED,
    (Again.RETRY, RETRY): RETRY,
    (Again.RESEND, SUCCESS): SCHEDULED,
}

# Why a request is refused, in what the caller can do instead.
_REFUSED: dict[tuple[Again, DeliveryStatus], str] = {
    (Again.RETRY, SUCCESS): "it succeeded; resend it to send it again",
    (Again.RETRY, SCHEDULED): "it is being sent now",
    (Again.RETRY, PROCESSING): "it is being sent now",
    (Again.RESEND, SCHEDULED): "it is being sent now",
    (Again.RESEND, PROCESSING): "it is being sent now",
    (Again.RESEND, RETRY): "it has not succeeded; retry it to send it now",
    (Again.RESEND, FAILURE): "it has not succeeded; retry it instead",
    (Again.RESEND, DISCARDED): "it has not succeeded; retry it instead",
}


def sent_again(
    delivery: Delivery, request: Again, *, now: float, reason: str, probe: bool = False
) -> Delivery:
    """``delivery`` made due at ``now`` by ``request`` (see AGAIN), with ``reason``.

    An ended delivery gets exactly one attempt (``attempt_limit``). A RETRY one keeps its
    schedule, unless it is the ``probe`` of an INACTIVE endpoint, which is one attempt whatever
    the delivery (architecture.md §3). FailedPreconditionError when the table refuses.
    """
    status = AGAIN.get((request, delivery.status))
    if status is None:
        why = _REFUSED.get((request, delivery.status), f"it is {delivery.status.value}")
        raise FailedPreconditionError(f"cannot {request.value} delivery {delivery.id}: {why}")
    limit = delivery.attempt_limit
    if status is not RETRY or probe:
        limit = delivery.attempt_count + 1
    return dataclasses.replace(
        delivery,
        status=status,
        status_reason=reason,
        next_attempt_at=now,
        attempt_limit=limit,
        updated_at=now,
    )


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
