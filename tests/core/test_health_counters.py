"""core/health.py: the latency histogram's buckets, a batch's tally, buckets of hours, and
percentiles within the histogram's resolution."""

from __future__ import annotations

import math
import random

import pytest

from convoyd.core.health import (
    HOUR,
    HOUR_US,
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    HealthBucket,
    HealthHour,
    buckets,
    hour_start_us,
    latency_bucket,
    percentile_ms,
    tally,
    total,
)
from convoyd.core.model import AttemptResult as R


def hist(**counts: int) -> tuple[int, ...]:
    """A histogram from {"b<bucket>": count}."""
    out = [0] * LATENCY_BUCKETS
    for name, n in counts.items():
        out[int(name[1:])] = n
    return tuple(out)


@pytest.mark.parametrize(
    ("duration_us", "bucket"),
    [
        (0, 0),
        (999, 0),
        (1000, 1),  # a bound belongs to the bucket above it: [bound before, bound)
        (1999, 1),
        (100_000, LATENCY_BOUNDS_MS.index(100) + 1),
        (149_999, LATENCY_BOUNDS_MS.index(100) + 1),
        (59_999_999, LATENCY_BUCKETS - 2),
        (60_000_000, LATENCY_BUCKETS - 1),
        (3_600_000_000, LATENCY_BUCKETS - 1),
    ],
)
def test_latency_buckets(duration_us: int, bucket: int) -> None:
    assert latency_bucket(duration_us) == bucket


def test_bounds_rise_and_end_at_the_largest_timeout() -> None:
    assert list(LATENCY_BOUNDS_MS) == sorted(set(LATENCY_BOUNDS_MS))
    assert LATENCY_BOUNDS_MS[-1] == 60_000
    assert len(LATENCY_BOUNDS_MS) + 1 == LATENCY_BUCKETS


@pytest.mark.parametrize(
    ("at_us", "start_us"),
    [(0, 0), (HOUR_US - 1, 0), (HOUR_US, HOUR_US), (5 * HOUR_US + 17, 5 * HOUR_US)],
)
def test_hour_start(at_us: int, start_us: int) -> None:
    assert hour_start_us(at_us) == start_us


def test_tally_counts_per_endpoint_and_hour_and_times_only_answers_and_timeouts() -> None:
    h = 10 * HOUR_US
    counts = tally(
        [
            ("a", h, R.SUCCESS, 120_000),
            ("a", h + HOUR_US - 1, R.HTTP_ERROR, 120_000),
            ("a", h + HOUR_US, R.TIMEOUT, 15_000_000),
            ("a", h + 5, R.NETWORK_ERROR, 1_000),
            ("b", h, R.BLOCKED, 0),
        ]
    )
    b120, b15s = latency_bucket(120_000), latency_bucket(15_000_000)
    assert counts == {
        ("a", h): [1, 2, *hist(**{f"b{b120}": 2})],
        ("a", h + HOUR_US): [0, 1, *hist(**{f"b{b15s}": 1})],
        ("b", h): [0, 1, *hist()],
    }
    assert tally([]) == {}


def _hour(at: float, ok: int = 1, failed: int = 0) -> HealthHour:
    return HealthHour(endpoint_id="a", hour=at, ok=ok, failed=failed, latency=hist(b3=ok))


def test_buckets_are_aligned_end_with_now_and_sum_their_hours() -> None:
    now = 100 * HOUR + 1234.0  # inside hour 100
    hours = [
        _hour(76 * HOUR),  # before the first of 24 hourly buckets (77 .. 100): left out
        _hour(77 * HOUR, ok=2),
        _hour(100 * HOUR, ok=3, failed=1),
        _hour(101 * HOUR),  # after now's bucket: left out
    ]
    day = buckets(hours, end=now, width=HOUR, count=24)
    assert [b.start for b in day] == [(77 + i) * HOUR for i in range(24)]
    assert day[-1].end == 101 * HOUR
    assert (day[0].ok, day[-1].ok, day[-1].failed) == (2, 3, 1)
    assert sum(b.attempts for b in day) == 6
    week = buckets(hours, end=now, width=6 * HOUR, count=28)
    assert week[-1].start == 96 * HOUR and week[-1].end == 102 * HOUR  # 96..102 holds 100
    # Hour 101 lies in now's 6-hour bucket (another node's clock may run ahead): it counts.
    assert week[-1].ok == 4 and week[-1].latency == hist(b3=4)
    assert total(week).attempts == 8
    assert total([]) == HealthBucket(start=0.0, end=0.0)


@pytest.mark.parametrize(
    ("latency", "q", "expected"),
    [
        (hist(), 0.5, None),
        # All in [100, 150) ms: interpolated by rank inside the bucket.
        (hist(**{f"b{LATENCY_BOUNDS_MS.index(100) + 1}": 4}), 0.5, 125.0),
        (hist(**{f"b{LATENCY_BOUNDS_MS.index(100) + 1}": 4}), 1.0, 150.0),
        (hist(b0=1), 0.5, 0.5),
        # Half under 1 ms, half in [1, 2) ms: the median is the top of the first bucket.
        (hist(b0=5, b1=5), 0.5, 1.0),
        (hist(b0=5, b1=5), 0.95, 1.9),
        # Past the top bound: the top bound.
        (hist(**{f"b{LATENCY_BUCKETS - 1}": 3}), 0.5, 60_000.0),
    ],
)
def test_percentiles(latency: tuple[int, ...], q: float, expected: float | None) -> None:
    got = percentile_ms(latency, q)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_percentiles_of_random_times_lie_in_the_true_values_bucket() -> None:
    rng = random.Random(5)
    for _ in range(50):
        times_us = [round(rng.lognormvariate(11.5, 1.3)) for _ in range(rng.randint(1, 300))]
        latency = [0] * LATENCY_BUCKETS
        for t in times_us:
            latency[latency_bucket(t)] += 1
        ordered = sorted(times_us)
        for q in (0.5, 0.95):
            true_us = ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # by rank
            bucket = latency_bucket(true_us)
            low = 0 if bucket == 0 else LATENCY_BOUNDS_MS[bucket - 1]
            high = LATENCY_BOUNDS_MS[min(bucket, len(LATENCY_BOUNDS_MS) - 1)]
            got = percentile_ms(latency, q)
            assert got is not None and low <= got <= high, (q, true_us, got)


@pytest.mark.parametrize("q", [0.0, -0.1, 1.5])
def test_a_quantile_outside_0_1_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="quantile"):
        percentile_ms(hist(b1=1), q)
