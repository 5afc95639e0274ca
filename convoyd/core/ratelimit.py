"""The per-endpoint rate limit: never more than ``limit`` requests in any window of ``duration``.

A token bucket of capacity ``limit`` refilled at ``limit / duration`` is not enough: a full bucket
plus the refill lets up to 2 x limit through within one ``duration``, which a receiver counting
with a sliding window would reject. So convoyd keeps a sliding log of its last ``limit`` grants
and allows a request only when fewer than ``limit`` of them fall in ``(now - duration, now]``.
Bursts are allowed up to ``limit`` at once, never beyond.

When an endpoint moves to another cluster node, the log stays behind; the new owner ``fill``s
its limiter at the time of the move instead, as if it had just sent a whole burst, so the
receiver never sees more than ``limit`` requests in one window across the move.

Memory is the log: at most ``limit`` floats (roughly 32 bytes each in a deque), so 10,000
requests per window costs about 320 KB for that endpoint. Endpoint validation should bound
``rate_limit`` with that in mind.
"""

from __future__ import annotations

import math
from collections import deque


class SlidingWindowLimiter:
    """Grants at most ``limit`` acquisitions in every half-open interval of length ``duration``.

    Time is a parameter and is expected to be monotonic; an earlier ``now`` than the last grant is
    treated as the time of that grant, so a clock step back cannot double the allowance.
    """

    __slots__ = ("_duration", "_grants", "_limit")

    def __init__(self, limit: int, duration: float) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1 (no limit means no limiter), got {limit}")
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"duration must be > 0 seconds, got {duration}")
        self._limit = limit
        self._duration = float(duration)
        # Grant times, oldest first; maxlen documents (and enforces) the memory bound.
        self._grants: deque[float] = deque(maxlen=limit)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def duration(self) -> float:
        return self._duration

    def acquire(self, now: float) -> float:
        """0.0 and the grant is recorded when a request may go now; else the seconds to wait.

        A denied call records nothing: the caller waits the returned time and asks again (the
        answer can only be 0 then, unless someone else acquired meanwhile).
        """
        grants = self._grants
        effective = grants[-1] if grants and now < grants[-1] else now
        self._expire(effective)
        if len(grants) < self._limit:
            grants.append(effective)
            return 0.0
        # The oldest grant in the log leaves the window at exactly oldest + duration.
        return self._wait_until(self._free_at(grants[0]), now)

    def in_window(self, now: float) -> int:
        """Grants counted in the window ending at ``now``, without recording anything.

        Like ``acquire``, it counts grants later than ``now`` (a clock step back, or a fill at
        another node's time a little ahead of this one's) as in the window, so that it never
        says there is room when ``acquire`` would refuse.
        """
        horizon = now - self._duration
        return sum(1 for t in self._grants if horizon < t)

    def fill(self, now: float) -> None:
        """Records ``limit`` grants at ``now``: the next grant comes one full window later."""
        grants = self._grants
        # Never earlier than a grant already recorded, as in acquire.
        at = grants[-1] if grants and now < grants[-1] else now
        grants.clear()
        grants.extend([at] * self._limit)

    def _expire(self, now: float) -> None:
        horizon = now - self._duration
        grants = self._grants
        while grants and grants[0] <= horizon:
            grants.popleft()

    def _free_at(self, oldest: float) -> float:
        # The first float t with t - duration >= oldest: plain addition can round a hair low,
        # and a caller coming back at that instant would be refused again.
        t = oldest + self._duration
        while t - self._duration < oldest:
            t = math.nextafter(t, math.inf)
        return t

    @staticmethod
    def _wait_until(when: float, now: float) -> float:
        # Likewise for the caller's "now + wait": it must not land before ``when``.
        wait = when - now
        while now + wait < when:
            wait = math.nextafter(wait, math.inf)
        return wait
