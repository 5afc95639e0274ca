"""One endpoint's lane in the engine: its queue of due deliveries, what is in flight to it, how
quickly it answers, its circuit breaker, its rate limiter and its current signing keys."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from convoyd.core import signing
from convoyd.core.breaker import Breaker, BreakerConfig
from convoyd.core.model import Delivery, Endpoint
from convoyd.core.ratelimit import SlidingWindowLimiter

if TYPE_CHECKING:
    from convoyd.delivery.capacity import Kind

# Added to every rate-limit window: requests leave convoyd in order, but network jitter can
# bring an early one in late; a slightly longer window keeps the receiver's view within the limit.
RATE_WINDOW_GUARD = 1.05


def limiter_for(endpoint: Endpoint) -> SlidingWindowLimiter | None:
    spec = endpoint.spec
    if spec.rate_limit <= 0:
        return None
    return SlidingWindowLimiter(spec.rate_limit, spec.rate_limit_duration * RATE_WINDOW_GUARD)


class Lane:
    """One endpoint's queue of due deliveries, what is in flight to it, and its health."""

    __slots__ = (
        "breaker",
        "endpoint",
        "in_flight",
        "in_ready_ring",
        "keys",
        "keys_until",
        "limiter",
        "old",
        "parked",
        "proven",
        "queue",
        "slow",
        "wake",
    )

    def __init__(self, endpoint: Endpoint, breaker: BreakerConfig) -> None:
        self.endpoint = endpoint
        self.queue: deque[Delivery] = deque()
        self.in_flight = 0
        self.in_ready_ring = False  # in the engine's ready ring, or parked
        # How quickly the endpoint answers (convoyd.delivery.capacity): attempts in flight past
        # the slow threshold, whether the last one took longer, whether one ever took less.
        self.old = 0
        self.slow = False
        self.proven = False
        self.parked: Kind | None = None  # waiting for room in this budget
        self.keys: list[bytes] = []
        self.keys_until = -1.0  # signing keys are valid until this time (a secret expires)
        self.breaker = Breaker(breaker)
        self.limiter = limiter_for(endpoint)
        self.wake: asyncio.TimerHandle | None = (
            None  # wakes the lane when its breaker or limit allow
        )

    def signing_keys(self, now: float) -> list[bytes]:
        if now >= self.keys_until:
            spec = self.endpoint.spec
            chosen = signing.signing_secrets(spec.signature.scheme, self.endpoint.secrets, now)
            self.keys = [signing.secret_key(spec.signature.scheme, s.value) for s in chosen]
            expiries = [
                s.expires_at for s in self.endpoint.secrets if s.expires_at and s.expires_at > now
            ]
            self.keys_until = min(expiries, default=float("inf"))
        return self.keys
