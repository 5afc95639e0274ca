"""The circuit breaker: every transition, legal and illegal, with an injected clock."""

from __future__ import annotations

import itertools
import random

import pytest

from convoyd.core.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    TRANSITIONS,
    Breaker,
    BreakerConfig,
    BreakerEvent,
    BreakerState,
    Transition,
    next_state,
)
from convoyd.errors import ConfigError

S, F = True, False


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _config(**overrides: float) -> BreakerConfig:
    # A 10 s window of ten 1 s buckets keeps the arithmetic obvious.
    values: dict[str, float] = {
        "window": 10.0,
        "buckets": 10,
        "min_requests": 4,
        "failure_rate_threshold": 0.5,
        "consecutive_failures": 0,
        "cooldown": 30.0,
        "cooldown_multiplier": 2.0,
        "max_cooldown": 200.0,
    }
    values.update(overrides)
    return BreakerConfig(
        window=values["window"],
        buckets=int(values["buckets"]),
        min_requests=int(values["min_requests"]),
        failure_rate_threshold=values["failure_rate_threshold"],
        consecutive_failures=int(values["consecutive_failures"]),
        cooldown=values["cooldown"],
        cooldown_multiplier=values["cooldown_multiplier"],
        max_cooldown=values["max_cooldown"],
    )


def _feed(
    breaker: Breaker, results: list[bool], start: float = 0.0, step: float = 0.01
) -> list[Transition | None]:
    return [breaker.record(ok, start + i * step) for i, ok in enumerate(results)]


def _opened(config: BreakerConfig | None = None, at: float = 0.0) -> Breaker:
    breaker = Breaker(config or _config(consecutive_failures=1))
    transition = breaker.record(F, at)
    assert transition is not None
    assert breaker.state is OPEN
    return breaker


# -- the table ---------------------------------------------------------------------------------

LEGAL = [
    (CLOSED, BreakerEvent.SUCCESS, CLOSED),
    (CLOSED, BreakerEvent.FAILURE, CLOSED),
    (CLOSED, BreakerEvent.TRIP, OPEN),
    (OPEN, BreakerEvent.SUCCESS, OPEN),
    (OPEN, BreakerEvent.FAILURE, OPEN),
    (OPEN, BreakerEvent.COOLDOWN_ELAPSED, HALF_OPEN),
    (HALF_OPEN, BreakerEvent.SUCCESS, CLOSED),
    (HALF_OPEN, BreakerEvent.FAILURE, OPEN),
]
ILLEGAL = sorted(set(itertools.product(BreakerState, BreakerEvent)) - {(s, e) for s, e, _ in LEGAL})


def test_the_table_is_exactly_the_legal_transitions() -> None:
    assert dict(TRANSITIONS) == {(s, e): to for s, e, to in LEGAL}


@pytest.mark.parametrize(("state", "event", "expected"), LEGAL)
def test_legal_transition(state: BreakerState, event: BreakerEvent, expected: BreakerState) -> None:
    assert next_state(state, event) is expected


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_transition(state: BreakerState, event: BreakerEvent) -> None:
    # TRIP only from CLOSED, COOLDOWN_ELAPSED only from OPEN.
    with pytest.raises(ValueError, match="illegal breaker transition"):
        next_state(state, event)


# -- CLOSED ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("results", "trips_at", "reason"),
    [
        # Reaches min_requests (4) at 50 %: opens on the 4th.
        ([S, S, F, F], 3, "failure rate 50% over 4 attempts in 10s"),
        ([F, F, F, F], 3, "failure rate 100% over 4 attempts in 10s"),
        ([S, S, S, S, F, F, F, F], 7, "failure rate 50% over 8 attempts in 10s"),
        # The rate is checked on failures only: 80 % is first seen on the 5th attempt.
        ([F, F, F, S, F], 4, "failure rate 80% over 5 attempts in 10s"),
        # Never at the threshold on a failure: stays closed.
        ([S, S, F, S, F, S, F], None, ""),
        ([S, S, S, S, S, S, F, F, F, F, F], None, ""),
        # A success never opens it, even above the threshold.
        ([F, F, F, S], None, ""),
    ],
)
def test_closed_opens_on_failure_rate(
    results: list[bool], trips_at: int | None, reason: str
) -> None:
    breaker = Breaker(_config(min_requests=4))
    transitions = _feed(breaker, results)
    expected: list[Transition | None] = [None] * len(results)
    if trips_at is not None:
        expected[trips_at] = Transition(CLOSED, OPEN, reason)
        # Whatever comes after the trip is not part of this test.
        transitions = transitions[: trips_at + 1]
        expected = expected[: trips_at + 1]
    assert transitions == expected


@pytest.mark.parametrize("min_requests", [1, 5, 20])
def test_min_requests_is_respected(min_requests: int) -> None:
    breaker = Breaker(_config(min_requests=min_requests))
    transitions = _feed(breaker, [F] * min_requests)
    assert transitions[:-1] == [None] * (min_requests - 1)
    assert transitions[-1] == Transition(
        CLOSED, OPEN, f"failure rate 100% over {min_requests} attempts in 10s"
    )


@pytest.mark.parametrize(
    ("results", "trips_at"),
    [
        ([F, F, F], 2),
        ([F, F, S, F, F, F], 5),
        ([F, S, F, S, F, S], None),
    ],
)
def test_closed_opens_on_consecutive_failures(results: list[bool], trips_at: int | None) -> None:
    breaker = Breaker(_config(min_requests=1000, consecutive_failures=3))
    transitions = _feed(breaker, results)
    expected: list[Transition | None] = [None] * len(results)
    if trips_at is not None:
        expected[trips_at] = Transition(CLOSED, OPEN, "3 consecutive failures")
    assert transitions == expected


def test_default_config_reasons() -> None:
    # Busy endpoint: the rate rule fires once min_requests (10) is reached.
    busy = Breaker()
    transitions = _feed(busy, [S] * 5 + [F] * 5)
    assert transitions[-1] == Transition(CLOSED, OPEN, "failure rate 50% over 10 attempts in 60s")
    # Quiet endpoint: one failure every 7 s never fills the window, the consecutive rule fires.
    quiet = Breaker()
    transitions = _feed(quiet, [F] * 10, step=7.0)
    assert transitions[:-1] == [None] * 9
    assert transitions[-1] == Transition(CLOSED, OPEN, "10 consecutive failures")


def test_old_buckets_age_out() -> None:
    breaker = Breaker(_config(min_requests=4))
    _feed(breaker, [F, F, F], start=0.0)
    assert breaker.window_attempts(0.5) == 3
    assert breaker.failure_rate(0.5) == 1.0
    # Still within the 10 s window (ten 1 s buckets: bucket 0 is the oldest at t=9.x).
    assert breaker.window_attempts(9.99) == 3
    # Bucket 0 has left the window.
    assert breaker.window_attempts(10.0) == 0
    assert breaker.failure_rate(10.0) == 0.0
    # So the 4th failure, 10 s later, does not reach min_requests.
    assert breaker.record(F, 10.0) is None
    assert breaker.window_attempts(10.0) == 1


def test_a_reused_slot_forgets_its_old_counts() -> None:
    breaker = Breaker(_config(min_requests=4))
    _feed(breaker, [F, F, F], start=3.0)
    # 10 s later the same slot (3 % 10) is reused for a new bucket.
    _feed(breaker, [S], start=13.0)
    assert breaker.window_attempts(13.0) == 1
    assert breaker.failure_rate(13.0) == 0.0


def test_window_counts_mix_of_buckets() -> None:
    breaker = Breaker(_config(min_requests=100))
    for t in range(20):
        breaker.record(t % 2 == 0, float(t))
    # At t=19.5 the window holds buckets 10..19: five successes, five failures.
    assert breaker.window_attempts(19.5) == 10
    assert breaker.failure_rate(19.5) == 0.5


def test_memory_is_bounded_by_buckets() -> None:
    breaker = Breaker(_config(min_requests=10**9, buckets=10))
    for i in range(10_000):
        breaker.record(i % 3 == 0, i * 0.37)
    assert len(breaker._bucket_ids) == 10
    assert len(breaker._successes) == 10
    assert len(breaker._failures) == 10


def test_closed_allows_everything_and_release_is_a_no_op() -> None:
    breaker = Breaker(_config())
    assert all(breaker.allow(t / 10) for t in range(100))
    assert breaker.release(10.0) is False
    assert breaker.state is CLOSED
    assert breaker.next_probe_at is None


# -- OPEN --------------------------------------------------------------------------------------


def test_open_refuses_traffic_during_the_cooldown() -> None:
    breaker = _opened(at=100.0)
    assert breaker.next_probe_at == 130.0
    for t in (100.0, 100.1, 115.0, 129.999):
        assert breaker.allow(t) is False
        assert breaker.state is OPEN
    assert breaker.release(120.0) is False
    assert breaker.next_probe_at == 130.0


def test_late_results_while_open_change_no_state() -> None:
    breaker = _opened(at=100.0)
    assert breaker.consecutive_trips == 1
    # A failure from an attempt let through before the trip does not extend the cooldown.
    assert breaker.record(F, 105.0) is None
    assert breaker.state is OPEN
    assert breaker.next_probe_at == 130.0
    assert breaker.consecutive_trips == 1
    # A late success is a success between trips: it resets the trip count, not the state.
    assert breaker.record(S, 106.0) is None
    assert breaker.state is OPEN
    assert breaker.next_probe_at == 130.0
    assert breaker.consecutive_trips == 0


# -- OPEN -> HALF_OPEN -------------------------------------------------------------------------


@pytest.mark.parametrize("probe_time", [130.0, 131.0, 10_000.0])
def test_after_the_cooldown_exactly_one_probe_goes(probe_time: float) -> None:
    breaker = _opened(at=100.0)
    assert breaker.allow(probe_time) is True
    assert breaker.state is HALF_OPEN
    assert breaker.probe_in_flight
    assert breaker.next_probe_at is None
    for dt in (0.0, 1.0, 1000.0):
        assert breaker.allow(probe_time + dt) is False
    assert breaker.state is HALF_OPEN


def test_a_released_probe_can_be_replaced() -> None:
    breaker = _opened(at=100.0)
    assert breaker.allow(130.0) is True
    assert breaker.release(131.0) is True
    assert breaker.state is HALF_OPEN
    assert not breaker.probe_in_flight
    assert breaker.next_probe_at == 131.0
    # Releasing twice gives back nothing more.
    assert breaker.release(131.5) is False
    assert breaker.allow(132.0) is True
    assert breaker.allow(132.0) is False


# -- HALF_OPEN -> CLOSED / OPEN ----------------------------------------------------------------


def test_probe_success_closes_and_resets() -> None:
    breaker = Breaker(_config(min_requests=4))
    _feed(breaker, [F, F, F, F], start=0.0)
    assert breaker.state is OPEN
    # Fail a probe first so the cooldown has grown.
    assert breaker.next_probe_at == pytest.approx(30.03)
    assert breaker.allow(30.1)
    assert breaker.record(F, 30.5) == Transition(HALF_OPEN, OPEN, "probe failed")
    assert breaker.cooldown == 60.0
    assert breaker.consecutive_trips == 2
    assert breaker.allow(90.5)
    assert breaker.record(S, 91.0) == Transition(HALF_OPEN, CLOSED, "probe succeeded")
    assert breaker.state is CLOSED
    assert breaker.cooldown == 30.0
    assert breaker.consecutive_trips == 0
    assert breaker.window_attempts(91.0) == 0
    assert breaker.next_probe_at is None
    assert not breaker.probe_in_flight
    assert breaker.allow(91.0)
    assert breaker.allow(91.0)


def test_window_is_reset_on_close() -> None:
    # Failures recorded just before closing must not count toward the next trip.
    config = _config(min_requests=4, window=1000.0, cooldown=1.0, max_cooldown=1.0)
    breaker = Breaker(config)
    _feed(breaker, [F, F, F, F], start=0.0)
    assert breaker.allow(2.0)
    breaker.record(S, 2.0)
    assert _feed(breaker, [F, F, F], start=3.0) == [None, None, None]
    assert breaker.state is CLOSED


def test_probe_failure_reopens_with_a_growing_capped_cooldown() -> None:
    breaker = _opened(_config(consecutive_failures=1, cooldown=30, max_cooldown=200), at=0.0)
    now = 0.0
    cooldowns = []
    for _ in range(6):
        assert breaker.next_probe_at is not None
        now = breaker.next_probe_at
        assert breaker.allow(now - 0.001) is False
        assert breaker.allow(now) is True
        transition = breaker.record(F, now + 1.0)
        assert transition == Transition(HALF_OPEN, OPEN, "probe failed")
        cooldowns.append(breaker.cooldown)
        assert breaker.next_probe_at == now + 1.0 + breaker.cooldown
    assert cooldowns == [60.0, 120.0, 200.0, 200.0, 200.0, 200.0]


def test_the_first_result_while_half_open_decides() -> None:
    # A straggler let through before the trip lands after the probe was sent: it decides, and
    # the probe's own result then lands in CLOSED like any other attempt.
    breaker = _opened(at=0.0)
    assert breaker.allow(30.0)
    assert breaker.record(S, 31.0) == Transition(HALF_OPEN, CLOSED, "probe succeeded")
    assert breaker.record(S, 31.5) is None
    assert breaker.state is CLOSED


def test_a_result_after_a_release_still_decides() -> None:
    breaker = _opened(at=0.0)
    assert breaker.allow(30.0)
    assert breaker.release(30.0)
    assert breaker.record(F, 31.0) == Transition(HALF_OPEN, OPEN, "probe failed")
    assert breaker.next_probe_at == 31.0 + 60.0


# -- consecutive trips -------------------------------------------------------------------------


def test_consecutive_trips_count_openings_without_a_success() -> None:
    breaker = Breaker(_config(consecutive_failures=2, min_requests=1000))
    _feed(breaker, [F, F])
    assert breaker.consecutive_trips == 1
    now = 0.0
    for expected in (2, 3, 4, 5):
        assert breaker.next_probe_at is not None
        now = breaker.next_probe_at
        assert breaker.allow(now)
        breaker.record(F, now)
        assert breaker.consecutive_trips == expected
    # Recovery, then failing again, starts counting from 1.
    assert breaker.next_probe_at is not None
    now = breaker.next_probe_at
    assert breaker.allow(now)
    breaker.record(S, now)
    assert breaker.consecutive_trips == 0
    _feed(breaker, [F, F], start=now + 1)
    assert breaker.consecutive_trips == 1


# -- clock, config ----------------------------------------------------------------------------


def test_a_clock_step_back_is_treated_as_the_latest_time() -> None:
    breaker = Breaker(_config(min_requests=4))
    _feed(breaker, [S, S], start=50.0)
    # An earlier time lands in the newest bucket instead of resurrecting an old slot.
    breaker.record(F, 1.0)
    assert breaker.window_attempts(50.0) == 3
    assert breaker.failure_rate(50.0) == pytest.approx(1 / 3)


def test_random_operations_never_let_two_probes_out() -> None:
    rng = _rng(1234)
    breaker = Breaker(_config(min_requests=3, consecutive_failures=2, cooldown=5, max_cooldown=40))
    now = 0.0
    in_flight_probes = 0
    for _ in range(20_000):
        now += rng.expovariate(1.0)
        op = rng.random()
        state_before = breaker.state
        if op < 0.5:
            allowed = breaker.allow(now)
            if allowed and state_before is not CLOSED:
                in_flight_probes += 1
        elif op < 0.55:
            if breaker.release(now):
                in_flight_probes -= 1
        else:
            breaker.record(rng.random() < 0.4, now)
            if state_before is HALF_OPEN:
                in_flight_probes = 0
        assert in_flight_probes <= 1
        assert breaker.cooldown <= 40
        if breaker.state is OPEN:
            assert breaker.next_probe_at is not None


_BAD_CONFIGS = [
    ("window", {"window": 0.0}),
    ("window", {"window": float("inf")}),
    ("buckets", {"buckets": 0}),
    ("min_requests", {"min_requests": 0}),
    ("failure_rate_threshold", {"failure_rate_threshold": 0.0}),
    ("failure_rate_threshold", {"failure_rate_threshold": 1.5}),
    ("consecutive_failures", {"consecutive_failures": -1}),
    ("cooldown", {"cooldown": 0.0}),
    ("cooldown_multiplier", {"cooldown_multiplier": 0.5}),
    ("max_cooldown", {"max_cooldown": 10.0}),
]


@pytest.mark.parametrize(("field", "overrides"), _BAD_CONFIGS)
def test_config_is_validated(field: str, overrides: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        _config(**overrides)


def test_default_config() -> None:
    config = BreakerConfig()
    assert (config.window, config.buckets, config.min_requests) == (60.0, 10, 10)
    assert (config.failure_rate_threshold, config.consecutive_failures) == (0.5, 10)
    assert (config.cooldown, config.cooldown_multiplier, config.max_cooldown) == (30.0, 2.0, 600.0)
