"""The per-endpoint limiter: a hard bound of ``limit`` grants in any window of ``duration``."""

from __future__ import annotations

import random

import pytest

from convoyd.core.ratelimit import SlidingWindowLimiter


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _max_in_any_window(grants: list[float], duration: float) -> int:
    """The most grants inside one half-open window (t - duration, t] over every t."""
    best = 0
    start = 0
    for end, t in enumerate(grants):
        while grants[start] <= t - duration:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        # limit 3 per 10 s: a burst of 3, then wait for the oldest to leave the window.
        ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 10.0]),
        ([0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 7.0]),
        ([0.0, 1.0, 2.0, 9.999, 10.0], [0.0, 0.0, 0.0, pytest.approx(0.001), 0.0]),
        # Denied calls record nothing: the wait stays anchored on the oldest grant.
        ([0.0, 0.0, 0.0, 5.0, 6.0, 10.0], [0.0, 0.0, 0.0, 5.0, 4.0, 0.0]),
        # After a quiet spell the full burst is available again.
        ([0.0, 0.0, 0.0, 100.0, 100.0, 100.0, 100.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0]),
    ],
)
def test_acquire(calls: list[float], expected: list[float]) -> None:
    limiter = SlidingWindowLimiter(3, 10.0)
    assert [limiter.acquire(t) for t in calls] == expected


def test_a_full_bucket_plus_refill_is_not_allowed() -> None:
    # A token bucket (capacity 10, refill 1/s) would allow 10 at t=0 and 9 more by t=9.99.
    limiter = SlidingWindowLimiter(10, 10.0)
    granted = [t for t in [0.0] * 10 + [i + 0.99 for i in range(10)] if limiter.acquire(t) == 0]
    assert granted == [0.0] * 10


def test_waiting_the_returned_time_succeeds() -> None:
    # Even with durations that do not add up exactly in binary floating point.
    for duration in (0.1, 0.3, 1 / 3, 7.7, 1e-6):
        limiter = SlidingWindowLimiter(1, duration)
        now = 0.1
        for _ in range(100):
            assert limiter.acquire(now) == 0.0
            wait = limiter.acquire(now)
            assert wait > 0
            now += wait
        # The last grant has just left the window, exactly as the wait promised.
        assert limiter.in_window(now) == 0


@pytest.mark.parametrize(
    ("limit", "duration", "seed"),
    [
        (1, 1.0, 1),
        (3, 1.0, 2),
        (5, 0.5, 3),
        (10, 60.0, 4),
        (100, 1.0, 5),
        (7, 0.1, 6),
    ],
)
def test_no_window_ever_holds_more_than_limit(limit: int, duration: float, seed: int) -> None:
    rng = _rng(seed)
    limiter = SlidingWindowLimiter(limit, duration)
    now = 0.0
    grants: list[float] = []
    denied = 0
    for _ in range(20_000):
        # Mix of bursts (same instant), short gaps and long pauses.
        roll = rng.random()
        if roll < 0.3:
            pass
        elif roll < 0.95:
            now += rng.expovariate(limit * 2 / duration)
        else:
            now += rng.uniform(0, 3 * duration)
        wait = limiter.acquire(now)
        if wait == 0.0:
            grants.append(now)
        else:
            denied += 1
            assert 0 < wait <= duration * (1 + 1e-9)  # nudged up by an ulp or so
            # Some callers honour the wait exactly, which must then succeed.
            if rng.random() < 0.5:
                now += wait
                assert limiter.acquire(now) == 0.0
                grants.append(now)
        assert len(limiter._grants) <= limit
    assert denied > 0, "the scenario should exercise the limit"
    assert _max_in_any_window(grants, duration) <= limit
    # And the limit is reachable: bursts use the full allowance.
    assert _max_in_any_window(grants, duration) == limit


def test_a_clock_step_back_does_not_grant_extra() -> None:
    limiter = SlidingWindowLimiter(2, 10.0)
    assert limiter.acquire(100.0) == 0.0
    assert limiter.acquire(100.0) == 0.0
    # 50 s "earlier": still the same window as the last grant.
    assert limiter.acquire(50.0) == pytest.approx(60.0)
    assert limiter.acquire(110.0) == 0.0


def test_in_window_records_nothing() -> None:
    limiter = SlidingWindowLimiter(2, 10.0)
    assert limiter.in_window(0.0) == 0
    limiter.acquire(0.0)
    assert limiter.in_window(5.0) == 1
    assert limiter.in_window(10.0) == 0
    assert limiter.acquire(5.0) == 0.0


@pytest.mark.parametrize(
    ("limit", "duration", "message"),
    [
        (0, 1.0, "limit"),
        (-1, 1.0, "limit"),
        (1, 0.0, "duration"),
        (1, -1.0, "duration"),
        (1, float("nan"), "duration"),
        (1, float("inf"), "duration"),
    ],
)
def test_invalid_limits_are_rejected(limit: int, duration: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlidingWindowLimiter(limit, duration)
