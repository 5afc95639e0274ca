"""The delivery engine's settings and the interfaces it is given (sender, state changes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from convoyd import __version__
from convoyd.core.breaker import BreakerConfig
from convoyd.core.model import RetryPolicy
from convoyd.core.outcome import DEFAULT_RETRY_AFTER_CAP
from convoyd.core.states import Trigger
from convoyd.delivery.sender import AttemptReport, OutboundRequest

USER_AGENT = f"convoyd/{__version__}"

# The defaults of the engine's limits, also those of the [delivery] settings.
DEFAULT_MAX_IN_FLIGHT = 512
DEFAULT_MAX_SLOW_IN_FLIGHT = 2048
DEFAULT_MAX_CONCURRENCY_PER_ENDPOINT = 8
DEFAULT_HTTP_TIMEOUT = 15.0
DEFAULT_INACTIVE_AFTER_TRIPS = 5


class SenderLike(Protocol):
    """The part of the Sender the engine uses; FakeSender provides it for unit tests."""

    async def send(self, request: OutboundRequest) -> AttemptReport: ...


# Applies a state-table trigger to an endpoint (EndpointManager.change_status).
StatusChanger = Callable[[str, Trigger, str], Awaitable[object]]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    """Attempts in flight across all endpoints that answer quickly (the main pool)."""
    max_slow_in_flight: int = DEFAULT_MAX_SLOW_IN_FLIGHT
    """Attempts in flight past ``slow_attempt_after``, or to endpoints that are slow now (the slow
    pool, convoyd.delivery.capacity); at most ``max_in_flight + max_slow_in_flight`` in all."""
    slow_attempt_after: float = 0.5
    """Seconds after which an attempt, and its endpoint until it answers quicker, counts as slow."""
    max_concurrency_per_endpoint: int = DEFAULT_MAX_CONCURRENCY_PER_ENDPOINT
    """Default per-endpoint limit (an endpoint's max_concurrency overrides it)."""
    default_http_timeout: float = DEFAULT_HTTP_TIMEOUT
    default_retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP
    sweep_interval: float = 5.0
    """How often retries due later than the timer horizon are loaded from the store."""
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    inactive_after_trips: int = DEFAULT_INACTIVE_AFTER_TRIPS
    """Breaker openings in a row (no success between) that make an endpoint INACTIVE."""
