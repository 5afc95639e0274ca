"""Delivery health counters: hourly attempt counts with a fixed latency histogram, and sums.

The store keeps one row per endpoint and hour (store/health_sql.py, store/pg_health.py), added
to in the same transaction that records the attempts, so the portal's charts read a few hundred
small rows whatever the number of deliveries. An attempt counts in the hour (UTC) it started:
``ok`` when it succeeded, ``failed`` otherwise. Its response time goes into the histogram when
the receiver answered (any status) or the attempt timed out; a connection that failed or a
request the SSRF guard blocked has no response time.

Percentiles come from the histogram: the quantile's bucket is found by rank and the value
interpolated linearly inside it (as Prometheus' histogram_quantile does), so a reported p95
lies within the bucket of the true one. Buckets are [bound before, bound) in microseconds; the
last one holds everything at or past the top bound and reports that bound.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from convoyd.core.model import AttemptResult

HOUR = 3600.0
HOUR_US = 3_600_000_000

# Upper bounds of the latency buckets in milliseconds: about 1.5x apart from 50 ms on, up to
# the largest http_timeout (60 s). Shipped in the schema (one column per bucket, migration 6
# of both stores): changing them needs a migration.
LATENCY_BOUNDS_MS: tuple[int, ...] = (
    1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
    1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000, 30000, 60000,
)  # fmt: skip
LATENCY_BOUNDS_US: tuple[int, ...] = tuple(ms * 1000 for ms in LATENCY_BOUNDS_MS)
LATENCY_BUCKETS = len(LATENCY_BOUNDS_MS) + 1
"""Histogram buckets: one below each bound, and the last one at or past the top bound."""

TIMED_RESULTS = frozenset({AttemptResult.SUCCESS, AttemptResult.HTTP_ERROR, AttemptResult.TIMEOUT})
"""The results whose duration is a response time."""

NO_LATENCY: tuple[int, ...] = (0,) * LATENCY_BUCKETS

_SUCCESS = AttemptResult.SUCCESS.value
_TIMED_VALUES = frozenset(r.value for r in TIMED_RESULTS)


def hour_start_us(started_at_us: int) -> int:
    """The start of the UTC hour ``started_at_us`` lies in (microseconds since the epoch)."""
    return started_at_us - started_at_us % HOUR_US


def latency_bucket(duration_us: int) -> int:
    """The histogram bucket of a response time: how many bounds lie at or below it."""
    return bisect.bisect_right(LATENCY_BOUNDS_US, duration_us)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthHour:
    """One endpoint's attempts that started in one hour, as the store keeps them."""

    endpoint_id: str
    hour: float
    """The hour's start, seconds since the epoch (a multiple of HOUR)."""
    ok: int = 0
    failed: int = 0
    latency: tuple[int, ...] = NO_LATENCY
    """Response times counted per bucket of LATENCY_BOUNDS_MS (LATENCY_BUCKETS entries)."""


CountsKey = tuple[str, int]
"""(endpoint id, hour start in microseconds)."""


def tally(attempts: Iterable[tuple[str, int, str, int]]) -> dict[CountsKey, list[int]]:
    """Counts of a batch of attempts, each (endpoint id, started at µs, result value,
    duration µs): for each (endpoint, hour) the list [ok, failed, latency bucket 0, ...]. A
    recorder batch becomes one upsert per (endpoint, hour) this way."""
    counts: dict[CountsKey, list[int]] = {}
    width = 2 + LATENCY_BUCKETS
    for endpoint_id, started_at_us, result, duration_us in attempts:
        key = (endpoint_id, started_at_us - started_at_us % HOUR_US)
        row = counts.get(key)
        if row is None:
            row = counts[key] = [0] * width
        if result == _SUCCESS:
            row[0] += 1
        else:
            row[1] += 1
        if result in _TIMED_VALUES:
            row[2 + bisect.bisect_right(LATENCY_BOUNDS_US, duration_us)] += 1
    return counts


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthBucket:
    """The attempts of one stretch of time on a chart (one or more hours, summed)."""

    start: float
    end: float
    ok: int = 0
    failed: int = 0
    latency: tuple[int, ...] = NO_LATENCY

    @property
    def attempts(self) -> int:
        return self.ok + self.failed

    @property
    def timed(self) -> int:
        """Attempts with a response time."""
        return sum(self.latency)

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0 < q <= 1) of the response times, in milliseconds; None
        when there is none."""
        return percentile_ms(self.latency, q)


def _add(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def buckets(
    hours: Iterable[HealthHour], *, end: float, width: float, count: int
) -> list[HealthBucket]:
    """``count`` buckets of ``width`` seconds (a whole number of hours), aligned to multiples
    of ``width`` since the epoch, the last one holding ``end``; the hours summed into them.
    Hours outside the buckets are left out."""
    last = (end // width) * width
    first = last - (count - 1) * width
    ok = [0] * count
    failed = [0] * count
    latency: list[tuple[int, ...]] = [NO_LATENCY] * count
    for hour in hours:
        index = int((hour.hour - first) // width)
        if 0 <= index < count:
            ok[index] += hour.ok
            failed[index] += hour.failed
            if hour.latency is not NO_LATENCY:  # read without response times: nothing to add
                before = latency[index]
                latency[index] = (
                    hour.latency if before is NO_LATENCY else _add(before, hour.latency)
                )
    return [
        HealthBucket(
            start=first + i * width,
            end=first + (i + 1) * width,
            ok=ok[i],
            failed=failed[i],
            latency=latency[i],
        )
        for i in range(count)
    ]


def total(parts: Sequence[HealthBucket]) -> HealthBucket:
    """The buckets summed into one spanning them all."""
    if not parts:
        return HealthBucket(start=0.0, end=0.0)
    latency = NO_LATENCY
    for part in parts:
        if part.latency is not NO_LATENCY:
            latency = part.latency if latency is NO_LATENCY else _add(latency, part.latency)
    return HealthBucket(
        start=parts[0].start,
        end=parts[-1].end,
        ok=sum(p.ok for p in parts),
        failed=sum(p.failed for p in parts),
        latency=latency,
    )


def percentile_ms(latency: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile of a histogram (module docstring), in milliseconds; None if empty."""
    if not 0 < q <= 1:
        raise ValueError(f"a quantile lies in (0, 1], not {q}")
    count = sum(latency)
    if count == 0:
        return None
    rank = q * count
    seen = 0
    for index, n in enumerate(latency):
        if n == 0:
            continue
        if seen + n >= rank:
            if index >= len(LATENCY_BOUNDS_MS):
                return float(LATENCY_BOUNDS_MS[-1])
            low = 0.0 if index == 0 else float(LATENCY_BOUNDS_MS[index - 1])
            high = float(LATENCY_BOUNDS_MS[index])
            return low + (high - low) * (rank - seen) / n
        seen += n
    return float(LATENCY_BOUNDS_MS[-1])  # not reached: the ranks sum to count
