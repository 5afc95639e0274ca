"""The endpoint state table, every pair of (state, trigger): legal moves and refusals."""

from __future__ import annotations

import pytest

from convoyd.core.model import EndpointStatus
from convoyd.core.states import ACTIONS, DISCARDS_NEW_EVENTS, TRANSITIONS, Trigger, transition
from convoyd.errors import FailedPreconditionError

A, INACTIVE, P, N = (
    EndpointStatus.ACTIVE,
    EndpointStatus.INACTIVE,
    EndpointStatus.PAUSED,
    EndpointStatus.PENDING,
)

# docs/architecture.md §3, written out independently of the implementation's table.
EXPECTED = {
    (A, Trigger.PAUSE): P,
    (INACTIVE, Trigger.PAUSE): P,
    (N, Trigger.PAUSE): P,
    (P, Trigger.RESUME): A,
    (INACTIVE, Trigger.ACTIVATE): A,
    (N, Trigger.ACTIVATE): A,
    (INACTIVE, Trigger.RETRY_PROBE): N,
    (N, Trigger.PROBE_SUCCEEDED): A,
    (N, Trigger.PROBE_FAILED): INACTIVE,
    (A, Trigger.FAILING): INACTIVE,
    (A, Trigger.GONE): INACTIVE,
    (N, Trigger.GONE): INACTIVE,
}

ALL_PAIRS = [(s, t) for s in EndpointStatus for t in Trigger]


@pytest.mark.parametrize(("state", "trigger"), ALL_PAIRS)
def test_every_pair_is_either_the_documented_move_or_refused(
    state: EndpointStatus, trigger: Trigger
) -> None:
    if (state, trigger) in EXPECTED:
        assert transition(state, trigger) is EXPECTED[(state, trigger)]
    else:
        with pytest.raises(FailedPreconditionError) as info:
            transition(state, trigger)
        message = str(info.value)
        assert state.value in message
        if trigger in ACTIONS:  # a person's request: what they can do instead, nothing else
            can = message.rsplit("; ", 1)[1]
            offered = [t for t in ACTIONS if t.value in can]
            assert offered == [t for t in ACTIONS if (state, t) in EXPECTED]
            for internal in set(Trigger) - set(ACTIONS):
                assert internal.value.replace("_", " ") not in message
                assert internal.value not in message


@pytest.mark.parametrize(
    ("state", "trigger", "message"),
    [
        (
            A,
            Trigger.RESUME,
            "cannot resume an endpoint that is active (only a paused one can be resumed);"
            " you can pause it",
        ),
        (
            INACTIVE,
            Trigger.RESUME,
            "cannot resume an endpoint that is inactive (only a paused one can be resumed);"
            " you can pause or activate it",
        ),
        (
            P,
            Trigger.PAUSE,
            "cannot pause an endpoint that is paused (only an active, inactive or pending one"
            " can be paused); you can resume it",
        ),
        (
            A,
            Trigger.ACTIVATE,
            "cannot activate an endpoint that is active (only an inactive or pending one can be"
            " activated); you can pause it",
        ),
    ],
)
def test_a_refusal_names_only_what_a_person_can_do(
    state: EndpointStatus, trigger: Trigger, message: str
) -> None:
    with pytest.raises(FailedPreconditionError) as info:
        transition(state, trigger)
    assert str(info.value) == message


def test_the_table_has_no_move_the_design_lacks() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(
    ("state", "discards"), [(A, False), (INACTIVE, True), (P, True), (N, True)]
)
def test_new_events_are_discarded_unless_active(state: EndpointStatus, discards: bool) -> None:
    assert (state in DISCARDS_NEW_EVENTS) is discards
