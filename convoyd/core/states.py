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


# The triggers a person asks for (PauseEndpoint, ResumeEndpoint, ActivateEndpoint), with the
# word a refusal uses for each having happened; the others are convoyd's own verdicts.
ACTIONS: dict[Trigger, str] = {
    Trigger.PAUSE: "paused",
    Trigger.RESUME: "resumed",
    Trigger.ACTIVATE: "activated",
}


def _alternatives(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _illegal_message(current: EndpointStatus, trigger: Trigger) -> str:
    """Why ``trigger`` is refused, naming only what a person can do (never convoyd's own
    verdicts such as failing or gone)."""
    possible = [t.value for t in ACTIONS if (current, t) in TRANSITIONS]
    can = f"you can {_alternatives(possible)} it" if possible else "nothing can change it now"
    done = ACTIONS.get(trigger)
    if done is None:  # an engine verdict that came too late: logged, never shown to a caller
        what = trigger.value.replace("_", " ")
        return f"{what} does not apply to an endpoint that is {current.value}"
    sources = [s.value for s in EndpointStatus if (s, trigger) in TRANSITIONS]
    article = "an" if sources[0][0] in "aeiou" else "a"
    return (
        f"cannot {trigger.value} an endpoint that is {current.value}"
        f" (only {article} {_alternatives(sources)} one can be {done}); {can}"
    )


def transition(current: EndpointStatus, trigger: Trigger) -> EndpointStatus:
    """The state after ``trigger``; if illegal, FailedPreconditionError says what is allowed."""
    try:
        return TRANSITIONS[(current, trigger)]
    except KeyError:
        raise FailedPreconditionError(_illegal_message(current, trigger)) from None
