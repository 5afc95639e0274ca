"""What moves with an endpoint to another node: its breaker (a snapshot, kept as JSON text by the
store) and its rate limit (filled at the time of the move)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from convoyd.core.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Breaker,
    BreakerConfig,
    BreakerSnapshot,
    BreakerState,
)
from convoyd.core.ratelimit import SlidingWindowLimiter

S, F = True, False
CONFIG = BreakerConfig(
    window=10.0,
    buckets=10,
    min_requests=100,  # only the consecutive rule trips here
    consecutive_failures=3,
    cooldown=30.0,
    cooldown_multiplier=2.0,
    max_cooldown=200.0,
)


def snap(
    state: BreakerState = CLOSED,
    *,
    cooldown: float = 30.0,
    next_probe_at: float | None = None,
    trips: int = 0,
    failures: int = 0,
) -> BreakerSnapshot:
    return BreakerSnapshot(
        state=state,
        cooldown=cooldown,
        next_probe_at=next_probe_at,
        consecutive_trips=trips,
        consecutive_failures=failures,
    )


def fed(results: list[bool], *, start: float = 0.0) -> Breaker:
    """A breaker fed ``results``, one per second from ``start``."""
    breaker = Breaker(CONFIG)
    for i, ok in enumerate(results):
        breaker.record(ok, start + i)
    return breaker


def half_open_with_probe_out() -> Breaker:
    breaker = fed([F, F, F])  # opens at t=2, probe due at 32
    assert breaker.allow(40.0)
    return breaker


def half_open_after_release() -> Breaker:
    breaker = half_open_with_probe_out()
    breaker.release(41.0)
    return breaker


def reopened() -> Breaker:
    breaker = half_open_with_probe_out()
    breaker.record(F, 45.0)  # the probe failed: cooldown doubled
    return breaker


# -- taking a snapshot -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Breaker(CONFIG), snap()),
        (lambda: fed([F, F]), snap(failures=2)),
        (lambda: fed([F, F, S]), snap()),
        (lambda: fed([F, F, F]), snap(OPEN, next_probe_at=32.0, trips=1)),
        # The probe in flight stays behind: the new owner may send one at once.
        (half_open_with_probe_out, snap(HALF_OPEN, next_probe_at=32.0, trips=1)),
        (half_open_after_release, snap(HALF_OPEN, next_probe_at=41.0, trips=1)),
        (reopened, snap(OPEN, cooldown=60.0, next_probe_at=105.0, trips=2)),
    ],
    ids=["fresh", "failing", "recovered", "open", "probing", "probe-released", "reopened"],
)
def test_snapshot(make: Callable[[], Breaker], expected: BreakerSnapshot) -> None:
    assert make().snapshot() == expected


# -- restoring it ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("saved", "asks", "allowed", "state_after"),
    [
        # OPEN: nothing before the probe time, then exactly one probe.
        (
            snap(OPEN, next_probe_at=100.0, trips=1),
            [99.0, 99.9, 100.0, 100.5],
            [F, F, S, F],
            HALF_OPEN,
        ),
        # HALF_OPEN: the old owner's probe is not this node's: one goes at once.
        (snap(HALF_OPEN, next_probe_at=50.0, trips=1), [60.0, 60.0], [S, F], HALF_OPEN),
        (snap(failures=2), [0.0, 0.0, 0.0], [S, S, S], CLOSED),
    ],
    ids=["open", "half-open", "closed"],
)
def test_restored_breaker_allows_as_saved(
    saved: BreakerSnapshot, asks: list[float], allowed: list[bool], state_after: BreakerState
) -> None:
    breaker = Breaker.from_snapshot(CONFIG, saved)
    assert [breaker.allow(t) for t in asks] == allowed
    assert breaker.state is state_after


@pytest.mark.parametrize(
    ("saved", "results", "trips_at"),
    [
        # Two failures in a row carried over: the third trips.
        (snap(failures=2), [F], 0),
        (snap(failures=0), [F, F, F], 2),
        # A success between resets the run, as it would have on the old owner.
        (snap(failures=2), [S, F, F, F], 3),
    ],
)
def test_consecutive_failures_carry_over(
    saved: BreakerSnapshot, results: list[bool], trips_at: int
) -> None:
    breaker = Breaker.from_snapshot(CONFIG, saved)
    transitions = [breaker.record(ok, 1000.0 + i) for i, ok in enumerate(results)]
    assert [i for i, t in enumerate(transitions) if t is not None] == [trips_at]
    assert breaker.state is OPEN
    assert breaker.consecutive_trips == saved.consecutive_trips + 1


@pytest.mark.parametrize(
    ("probe_ok", "state", "cooldown", "trips"),
    [(S, CLOSED, 30.0, 0), (F, OPEN, 120.0, 3)],
)
def test_a_restored_probe_decides_like_any(
    probe_ok: bool, state: BreakerState, cooldown: float, trips: int
) -> None:
    breaker = Breaker.from_snapshot(CONFIG, snap(OPEN, cooldown=60.0, next_probe_at=10.0, trips=2))
    assert breaker.allow(10.0)
    breaker.record(probe_ok, 11.0)
    assert (breaker.state, breaker.cooldown, breaker.consecutive_trips) == (state, cooldown, trips)


def test_restore_drops_the_probe_in_flight() -> None:
    breaker = half_open_with_probe_out()
    assert breaker.probe_in_flight
    breaker.restore(snap(HALF_OPEN, next_probe_at=32.0, trips=1))
    assert not breaker.probe_in_flight
    assert breaker.allow(40.0)


def test_restore_empties_the_window() -> None:
    breaker = fed([F, F])
    assert breaker.window_attempts(1.0) == 2
    breaker.restore(snap(failures=2))
    assert breaker.window_attempts(1.0) == 0
    assert breaker.failure_rate(1.0) == 0.0


@pytest.mark.parametrize(
    ("saved", "kept"),
    [(1.0, 30.0), (30.0, 30.0), (90.0, 90.0), (10_000.0, 200.0)],
)
def test_restored_cooldown_stays_within_this_nodes_bounds(saved: float, kept: float) -> None:
    breaker = Breaker.from_snapshot(CONFIG, snap(OPEN, cooldown=saved, next_probe_at=5.0))
    assert breaker.cooldown == kept


# -- the JSON form -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "saved",
    [
        snap(),
        snap(failures=7),
        snap(OPEN, cooldown=60.0, next_probe_at=1_700_000_123.456789, trips=2),
        snap(HALF_OPEN, next_probe_at=1_700_000_000.0, trips=4, failures=0),
        snap(OPEN, cooldown=0.1, next_probe_at=0.3),
    ],
)
def test_json_round_trip(saved: BreakerSnapshot) -> None:
    text = saved.to_json()
    assert isinstance(text, str)
    assert BreakerSnapshot.from_json(text) == saved


def test_json_form_is_stable() -> None:
    # Nodes of two versions share these rows during a rolling upgrade.
    assert snap(OPEN, next_probe_at=12.5, trips=1).to_json() == (
        '{"consecutive_failures":0,"consecutive_trips":1,"cooldown":30.0,'
        '"next_probe_at":12.5,"state":"open","v":1}'
    )


GOOD = json.loads(snap(OPEN, next_probe_at=12.5, trips=1).to_json())


def _with(**changes: object) -> str:
    data = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ("null", "not a JSON object"),
        (_with(v=2), "unknown version"),
        (_with(v=...), "unknown version"),
        (_with(cooldown=...), "missing cooldown"),
        (_with(state="ajar"), "state"),
        (_with(state=["open"]), "state"),
        (_with(cooldown=0), "cooldown"),
        (_with(cooldown="30"), "cooldown"),
        (_with(cooldown=True), "cooldown"),
        (_with(next_probe_at=None), "next_probe_at"),
        (_with(next_probe_at="soon"), "next_probe_at"),
        (_with(state="closed"), "next_probe_at"),  # closed with a probe time
        (_with(consecutive_trips=-1), "consecutive_trips"),
        (_with(consecutive_trips=1.0), "consecutive_trips"),
        (_with(consecutive_failures=False), "consecutive_failures"),
        (
            '{"v":1,"state":"open","cooldown":NaN,"next_probe_at":1,'
            '"consecutive_trips":0,"consecutive_failures":0}',
            "cooldown",
        ),
        (
            '{"v":1,"state":"open","cooldown":30,"next_probe_at":Infinity,'
            '"consecutive_trips":0,"consecutive_failures":0}',
            "next_probe_at",
        ),
    ],
)
def test_bad_json_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerSnapshot.from_json(text)


def test_whole_numbers_are_times_too() -> None:
    # Another writer may well store 30 for 30.0.
    restored = BreakerSnapshot.from_json(_with(cooldown=30, next_probe_at=12))
    assert restored == snap(OPEN, next_probe_at=12.0, trips=1)


# -- the rate limit across a move --------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "duration", "fill_at", "asks", "expected"),
    [
        # Filled at 100: nothing until 100 + duration, then a whole burst again.
        (3, 10.0, 100.0, [100.0, 105.0, 110.0, 110.0, 110.0, 110.0], [10.0, 5.0, 0, 0, 0, 10.0]),
        (1, 0.5, 7.0, [7.0, 7.25, 7.5], [0.5, 0.25, 0]),
        # The fill time may be ahead of this node's clock (another node's): still a full window.
        (2, 10.0, 50.0, [49.0, 60.0], [11.0, 0]),
    ],
)
def test_fill_makes_the_next_grant_wait_one_window(
    limit: int,
    duration: float,
    fill_at: float,
    asks: list[float],
    expected: list[float],
) -> None:
    limiter = SlidingWindowLimiter(limit, duration)
    limiter.fill(fill_at)
    assert limiter.in_window(fill_at) == limit
    assert [limiter.acquire(t) for t in asks] == [pytest.approx(e) for e in expected]


def test_fill_never_moves_the_window_back() -> None:
    limiter = SlidingWindowLimiter(2, 10.0)
    assert limiter.acquire(100.0) == 0.0
    limiter.fill(90.0)  # earlier than a grant already made: counts as at 100
    assert limiter.acquire(109.0) == pytest.approx(1.0)
    assert limiter.acquire(110.0) == 0.0


def test_in_window_counts_grants_ahead_of_now() -> None:
    # So the engine's "is there room" check agrees with acquire after a fill ahead of its clock.
    limiter = SlidingWindowLimiter(1, 10.0)
    limiter.fill(50.0)
    assert limiter.in_window(45.0) == 1
    assert limiter.acquire(45.0) == pytest.approx(15.0)
