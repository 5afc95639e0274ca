"""Delivery health for the portal: the endpoint page's charts and the endpoints list's
sparklines, each page's numbers read with ONE query of the store's hourly counters.

The endpoint page shows the last 24 hours in hourly buckets and the last 7 days in 6-hour
buckets (28 bars: one a day would hide a bad morning, one an hour would be 168 slivers on a
phone), both aligned to UTC and ending with the bucket that holds ``now``, so the newest bar
is still filling. Both come from the same read of the endpoint's hours. The list shows 24
hourly bars per endpoint, all endpoints of the page read at once. Drawing is charts.py's.

The caller has already checked that the viewer may see these endpoints (scope.py): this
module reads what it is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from convoyd.core.health import HOUR, HealthHour, buckets
from convoyd.portal import charts
from convoyd.portal.templates import Html

DAY_BUCKETS = 24
WEEK_BUCKET = 6 * HOUR
WEEK_BUCKETS = 28


class HealthSource(Protocol):
    """Where the counters come from: the Store (store/base.py ``health_hours``)."""

    async def health_hours(
        self, endpoint_ids: Sequence[str], *, since: float, until: float, latency: bool = True
    ) -> list[HealthHour]: ...


def _since(now: float, width: float, count: int) -> float:
    """The start of the first of ``count`` buckets of ``width`` ending with the one of now."""
    return (now // width) * width - (count - 1) * width


async def endpoint_health(source: HealthSource, endpoint_id: str, now: float) -> Html:
    """The endpoint page's "Delivery health" card (24 hours and 7 days), from one query."""
    since = min(_since(now, HOUR, DAY_BUCKETS), _since(now, WEEK_BUCKET, WEEK_BUCKETS))
    hours = await source.health_hours([endpoint_id], since=since, until=now + HOUR)
    day = buckets(hours, end=now, width=HOUR, count=DAY_BUCKETS)
    week = buckets(hours, end=now, width=WEEK_BUCKET, count=WEEK_BUCKETS)
    return charts.health_section(day, week)


async def sparklines(
    source: HealthSource, endpoint_ids: Sequence[str], now: float
) -> dict[str, Html]:
    """A sparkline of the last 24 hours for each endpoint id, from one query."""
    if not endpoint_ids:
        return {}
    # Counts only: a sparkline shows no response times.
    hours = await source.health_hours(
        endpoint_ids, since=_since(now, HOUR, DAY_BUCKETS), until=now + HOUR, latency=False
    )
    by_endpoint: dict[str, list[HealthHour]] = {i: [] for i in endpoint_ids}
    for hour in hours:
        by_endpoint.setdefault(hour.endpoint_id, []).append(hour)
    return {
        endpoint_id: charts.sparkline(
            buckets(by_endpoint[endpoint_id], end=now, width=HOUR, count=DAY_BUCKETS)
        )
        for endpoint_id in endpoint_ids
    }
