"""One endpoint's lane in the engine: its queue of due deliveries, what is in flight to it, how
quickly it answers, its circuit breaker, its rate limiter, its current signing keys, and whether
this node may still start attempts on it (convoyd.delivery.ownership)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from convoyd.core import signing
from convoyd.core.breaker import Breaker, BreakerConfig
from convoyd.core.model import Delivery, Endpoint, Ordering
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
        "dropped",
        "endpoint",
        "fenced",
        "fifo",
        "head",
        "head_known",
        "idle",
        "in_flight",
        "in_ready_ring",
        "keys",
        "keys_until",
        "limiter",
        "loading",
        "old",
        "parked",
        "proven",
        "queue",
        "releasing",
        "seen",
        "sending",
        "slow",
        "wake",
    )

    def __init__(self, endpoint: Endpoint, breaker: BreakerConfig) -> None:
        self.endpoint = endpoint
        self.queue: deque[Delivery] = deque()
        self.in_flight = 0
        self.sending: set[str] = set()  # ids of the deliveries in flight
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
        # Ownership (convoyd.delivery.ownership): the start fence refused an attempt; the lane
        # is being handed to another node; it is no longer held at all. The first two only
        # stop new attempts, the last makes the engine forget what its attempts leave.
        self.fenced = False
        self.releasing = False
        self.dropped = False
        self.idle: asyncio.Event | None = None  # set when in_flight falls to 0 (a hand-off)
        # A FIFO endpoint (convoyd.delivery.fifo): its head as last read from the store (None:
        # nothing pending), whether it has been read, whether a read is under way, and the
        # smallest id offered while it was ("" to read again in any case).
        self.fifo = endpoint.spec.ordering is Ordering.FIFO
        self.head: str | None = None
        self.head_known = False
        self.loading = False
        self.seen: str | None = None

    def begin(self, delivery_id: str) -> None:
        """An attempt of the delivery starts."""
        self.in_flight += 1
        self.sending.add(delivery_id)

    def end(self, delivery_id: str) -> None:
        """The attempt ``begin`` counted has ended, whatever its outcome."""
        self.in_flight -= 1
        self.sending.discard(delivery_id)
        if self.in_flight == 0 and self.idle is not None:
            self.idle.set()

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
