"""Retry policies and Retry-After parsing, table-driven with injected time and randomness."""

from __future__ import annotations

import functools
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from convoyd.core.model import STANDARD_WEBHOOKS_DELAYS, RetryPolicy, RetryStrategy
from convoyd.core.retry import next_delay, retry_after_delay


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


SCHEDULE = RetryStrategy.SCHEDULE
EXPONENTIAL = RetryStrategy.EXPONENTIAL
LINEAR = RetryStrategy.LINEAR


# Jitter off, so expected delays are exact.
_policy = functools.partial(RetryPolicy, jitter=0.0)


@pytest.mark.parametrize(
    ("policy", "attempts_made", "expected"),
    [
        # SCHEDULE: delays[attempts_made - 1], None past the end.
        (_policy(strategy=SCHEDULE), 1, 5.0),
        (_policy(strategy=SCHEDULE), 2, 300.0),
        (_policy(strategy=SCHEDULE), 7, 36000.0),
        (_policy(strategy=SCHEDULE), 8, None),
        (_policy(strategy=SCHEDULE, delays=(0.0, 1.5)), 1, 0.0),
        (_policy(strategy=SCHEDULE, delays=(0.0, 1.5)), 2, 1.5),
        (_policy(strategy=SCHEDULE, delays=(0.0, 1.5)), 3, None),
        (_policy(strategy=SCHEDULE, delays=()), 1, None),
        # EXPONENTIAL: initial * multiplier ** (n - 1), capped, max_retries retries.
        (_policy(strategy=EXPONENTIAL, initial_interval=5, multiplier=2, max_retries=5), 1, 5.0),
        (_policy(strategy=EXPONENTIAL, initial_interval=5, multiplier=2, max_retries=5), 2, 10.0),
        (_policy(strategy=EXPONENTIAL, initial_interval=5, multiplier=2, max_retries=5), 4, 40.0),
        (_policy(strategy=EXPONENTIAL, initial_interval=5, multiplier=2, max_retries=5), 5, 80.0),
        (_policy(strategy=EXPONENTIAL, initial_interval=5, multiplier=2, max_retries=5), 6, None),
        (
            _policy(
                strategy=EXPONENTIAL,
                initial_interval=5,
                multiplier=3,
                max_interval=100,
                max_retries=9,
            ),
            4,
            100.0,
        ),
        (
            _policy(
                strategy=EXPONENTIAL,
                initial_interval=1,
                multiplier=10,
                max_interval=7,
                max_retries=10,
            ),
            1,
            1.0,
        ),
        # Overflowing growth is the cap, not an exception.
        (
            _policy(
                strategy=EXPONENTIAL,
                initial_interval=1,
                multiplier=1e10,
                max_interval=9,
                max_retries=99,
            ),
            99,
            9.0,
        ),
        (_policy(strategy=EXPONENTIAL, max_retries=0), 1, None),
        # LINEAR: the interval, max_retries times.
        (_policy(strategy=LINEAR, interval=60, max_retries=3), 1, 60.0),
        (_policy(strategy=LINEAR, interval=60, max_retries=3), 3, 60.0),
        (_policy(strategy=LINEAR, interval=60, max_retries=3), 4, None),
        (_policy(strategy=LINEAR, interval=60, max_retries=0), 1, None),
    ],
)
def test_next_delay_without_jitter(
    policy: RetryPolicy, attempts_made: int, expected: float | None
) -> None:
    assert next_delay(policy, attempts_made, _rng(0)) == expected


def test_default_policy_is_the_standard_webhooks_schedule() -> None:
    policy = RetryPolicy(jitter=0.0)
    delays = [next_delay(policy, n, _rng(0)) for n in range(1, 9)]
    assert delays == [*STANDARD_WEBHOOKS_DELAYS, None]


@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(strategy=SCHEDULE, delays=(100.0,) * 5, jitter=0.2),
        RetryPolicy(strategy=EXPONENTIAL, initial_interval=100, multiplier=1, jitter=0.2),
        RetryPolicy(strategy=LINEAR, interval=100, jitter=0.2),
        RetryPolicy(strategy=LINEAR, interval=100, jitter=1.0),
    ],
)
def test_jitter_stays_within_its_band_and_spreads(policy: RetryPolicy) -> None:
    rng = _rng(42)
    low, high = 100 * (1 - policy.jitter / 2), 100 * (1 + policy.jitter / 2)
    seen = []
    for _ in range(500):
        delay = next_delay(policy, 1, rng)
        assert delay is not None
        assert low <= delay <= high
        seen.append(delay)
    # Spread over the band, not stuck at one end.
    assert min(seen) < 100 - (100 - low) / 2
    assert max(seen) > 100 + (high - 100) / 2


def test_jitter_is_reproducible_with_the_same_seed() -> None:
    policy = RetryPolicy(strategy=LINEAR, interval=10, jitter=0.5, max_retries=5)
    first = [next_delay(policy, n, _rng(7)) for n in range(1, 6)]
    second = [next_delay(policy, n, _rng(7)) for n in range(1, 6)]
    assert first == second


@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(strategy=LINEAR, interval=10, jitter=0.0),
        RetryPolicy(strategy=SCHEDULE, delays=(0.0,), jitter=0.5),
    ],
)
def test_no_jitter_draws_nothing(policy: RetryPolicy) -> None:
    rng = _rng(3)
    state = rng.getstate()
    next_delay(policy, 1, rng)
    assert rng.getstate() == state


@pytest.mark.parametrize("attempts_made", [0, -1])
def test_next_delay_rejects_attempts_below_one(attempts_made: int) -> None:
    with pytest.raises(ValueError, match="attempts_made"):
        next_delay(RetryPolicy(), attempts_made, _rng(0))


NOW = 1_700_000_000.0


def _http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, tz=UTC), usegmt=True)


@pytest.mark.parametrize(
    ("header", "cap", "expected"),
    [
        (None, 3600, None),
        ("", 3600, None),
        ("   ", 3600, None),
        ("120", 3600, 120.0),
        (" 120 ", 3600, 120.0),
        ("0", 3600, 0.0),
        ("7200", 3600, 3600.0),
        ("9" * 40, 3600, 3600.0),
        ("120", 0, 0.0),
        ("-5", 3600, None),
        ("1.5", 3600, None),
        ("²", 3600, None),
        ("soon", 3600, None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", 3600, None),
        (_http_date(90), 3600, 90.0),
        (_http_date(-90), 3600, 0.0),
        (_http_date(90_000), 3600, 3600.0),
        # "-0000" parses to a naive datetime; it still means UTC.
        (_http_date(60).replace("GMT", "-0000"), 3600, 60.0),
        (_http_date(60).replace("GMT", "+0100"), 3600, 0.0),
    ],
)
def test_retry_after_delay(header: str | None, cap: float, expected: float | None) -> None:
    assert retry_after_delay(header, NOW, cap) == expected


def test_retry_after_delay_rejects_a_negative_cap() -> None:
    with pytest.raises(ValueError, match="cap"):
        retry_after_delay("10", NOW, -1)
