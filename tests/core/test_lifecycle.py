"""after_attempt: one row per way an attempt can end; sent_again: one row per request and status."""

from __future__ import annotations

import dataclasses
import random

import pytest

from convoyd.core.lifecycle import AGAIN, Again, after_attempt, sent_again
from convoyd.core.model import Delivery, DeliveryStatus, RetryPolicy, RetryStrategy
from convoyd.core.outcome import Outcome, Verdict
from convoyd.errors import FailedPreconditionError

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


# -- sent again: RetryDelivery, ForceResendDelivery, a batch retry --------------------------

LATER = NOW + 300.0
S = DeliveryStatus


def waiting(status: DeliveryStatus, attempts: int = 2, limit: int | None = None) -> Delivery:
    return dataclasses.replace(
        delivery(attempts, limit), status=status, next_attempt_at=LATER, status_reason="HTTP 500"
    )


@pytest.mark.parametrize(
    ("request_", "status", "after", "limit"),
    [
        (Again.RETRY, S.FAILURE, S.SCHEDULED, 3),  # ended: exactly one more attempt
        (Again.RETRY, S.DISCARDED, S.SCHEDULED, 3),
        (Again.RETRY, S.RETRY, S.RETRY, None),  # retry now: its schedule goes on after
        (Again.RESEND, S.SUCCESS, S.SCHEDULED, 3),
    ],
)
def test_sent_again(
    request_: Again, status: DeliveryStatus, after: DeliveryStatus, limit: int | None
) -> None:
    before = waiting(status)
    got = sent_again(before, request_, now=NOW + 1, reason="asked")
    assert got == dataclasses.replace(
        before,
        status=after,
        status_reason="asked",
        next_attempt_at=NOW + 1,
        attempt_limit=limit,
        updated_at=NOW + 1,
    )
    assert got.attempt_count == before.attempt_count  # kept: attempts are counted when made


def test_retry_now_keeps_the_rest_of_the_schedule() -> None:
    """After the try a retry now brings forward fails, the policy's next delay follows, as
    if the try had come at its time: the 3rd attempt of the standard schedule waits 30 min."""
    now = sent_again(waiting(S.RETRY, attempts=2), Again.RETRY, now=NOW, reason="now")
    after = after_attempt(
        now, FAIL, policy=NO_JITTER, status_code=500, now=NOW, rng=random.Random(1)
    )
    assert (after.status, after.attempt_count) == (S.RETRY, 3)
    assert after.next_attempt_at == pytest.approx(NOW + 1800.0)


def test_the_probe_of_an_inactive_endpoint_is_one_attempt_even_when_waiting_to_retry() -> None:
    probe = sent_again(waiting(S.RETRY), Again.RETRY, now=NOW, reason="probe", probe=True)
    assert (probe.status, probe.attempt_limit, probe.attempt_count) == (S.RETRY, 3, 2)
    after = after_attempt(
        probe, FAIL, policy=NO_JITTER, status_code=500, now=NOW, rng=random.Random(1)
    )
    assert after.status is S.FAILURE


REFUSALS = [(r, s) for r in Again for s in DeliveryStatus if (r, s) not in AGAIN]


@pytest.mark.parametrize(("request_", "status"), REFUSALS)
def test_every_other_request_is_refused_saying_what_to_do(
    request_: Again, status: DeliveryStatus
) -> None:
    with pytest.raises(FailedPreconditionError) as info:
        sent_again(waiting(status), request_, now=NOW, reason="asked")
    message = str(info.value)
    assert message.startswith(f"cannot {request_.value} delivery dl_1: ")
    if status in (S.SCHEDULED, S.PROCESSING):
        assert message.endswith("it is being sent now")
    elif request_ is Again.RETRY:
        assert message.endswith("it succeeded; resend it to send it again")
    else:
        assert "retry it" in message
