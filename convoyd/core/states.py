"""The endpoint state machine of architecture.md §3: one table owns every transition."""

from __future__ import annotations

from enum import StrEnum

from convoyd.core.model import EndpointStatus
from convoyd.errors import FailedPreconditionError

ACTIVE = EndpointStatus.ACTIVE
INACTIVE = EndpointStatus.INACTIVE
PAUSED = EndpointStatus.PAUSED
PENDING = EndpointStatus.PENDING


class Trigger(StrEnum):
    """What asks an endpoint to change state."""

    PAUSE = "pause"  # PauseEndpoint
    RESUME = "resume"  # ResumeEndpoint
    ACTIVATE = "activate"  # ActivateEndpoint (operator skips the probe)
    RETRY_PROBE = "retry_probe"  # RetryDelivery on an INACTIVE endpoint
    PROBE_SUCCEEDED = "probe_succeeded"  # a delivery succeeded while PENDING
    PROBE_FAILED = "probe_failed"  # the PENDING probe failed
    FAILING = "failing"  # the breaker tripped N times in a row without a success
    GONE = "gone"  # the endpoint answered 410 Gone


# (from, trigger) -> to. Anything not listed is illegal.
TRANSITIONS: dict[tuple[EndpointStatus, Trigger], EndpointStatus] = {
    (ACTIVE, Trigger.PAUSE): PAUSED,
    (INACTIVE, Trigger.PAUSE): PAUSED,
    (PENDING, Trigger.PAUSE): PAUSED,
    (PAUSED, Trigger.RESUME): ACTIVE,
    (INACTIVE, Trigger.ACTIVATE): ACTIVE,
    (PENDING, Trigger.ACTIVATE): ACTIVE,
    (INACTIVE, Trigger.RETRY_PROBE): PENDING,
    (PENDING, Trigger.PROBE_SUCCEEDED): ACTIVE,
    (PENDING, Trigger.PROBE_FAILED): INACTIVE,
    (ACTIVE, Trigger.FAILING): INACTIVE,
    (ACTIVE, Trigger.GONE): INACTIVE,
    (PENDING, Trigger.GONE): INACTIVE,
}

# States in which new events are recorded as DISCARDED instead of being sent.
DISCARDS_NEW_EVENTS = frozenset({INACTIVE, PAUSED, PENDING})


def _illegal_message(current: EndpointStatus, trigger: Trigger) -> str:
    sources = sorted(s.value for (s, t) in TRANSITIONS if t == trigger)
    possible = sorted(t.value for (s, t) in TRANSITIONS if s == current)
    return (
        f"cannot {trigger.value.replace('_', ' ')} an endpoint that is {current.value}"
        f" (only from: {', '.join(sources) or 'nowhere'};"
        f" an endpoint that is {current.value} allows: {', '.join(possible) or 'nothing'})"
    )


def transition(current: EndpointStatus, trigger: Trigger) -> EndpointStatus:
    """The state after ``trigger``; if illegal, FailedPreconditionError says what is allowed."""
    try:
        return TRANSITIONS[(current, trigger)]
    except KeyError:
        raise FailedPreconditionError(_illegal_message(current, trigger)) from None
