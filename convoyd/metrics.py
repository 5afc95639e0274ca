"""Prometheus metrics: every convoyd metric, defined once on an injected registry.

Parts of convoyd that count things get the :class:`Metrics` object through their constructor
(None = no metrics, as in unit tests) and call its small methods; labelled children are
resolved once and kept in dicts, so the per-attempt cost is a dict lookup and an increment.
Gauges that describe state (queue depth, endpoint states, breakers, attempts in flight) are
read when scraped; the store's counts come from one cheap GROUP BY query, cached for a few
seconds so that frequent or concurrent scrapes do not add database work.

Labels are bounded: never an endpoint, owner or event id, whose series would grow without limit.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from convoyd import __version__
from convoyd.core.breaker import BreakerState
from convoyd.core.model import PENDING_STATUSES, AttemptResult, DeliveryStatus, EndpointStatus
from convoyd.store.base import IngestWrite, Pruned, StatusCounts

log = logging.getLogger(__name__)

PRUNED_KINDS = ("events", "deliveries", "attempts", "idempotency_keys")
# A client certificate this close to its not-after counts as expiring.
CERTIFICATE_WARNING_DAYS = 30
TOKEN_FETCH_OUTCOMES = ("fetched", "refused", "unreachable", "invalid")

# A webhook answers in a few ms when it only enqueues, in seconds when it works inline;
# endpoint timeouts go up to 60 s (default 15 s).
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
# Accept-to-success: milliseconds when the first attempt succeeds, hours along the retry
# schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
DELAY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
    7200.0,
    18000.0,
    36000.0,
    86400.0,
)
# A unary call costs ~0.5 ms of server CPU; listings and batches take longer.
GRPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# The queue: deliveries the engine still has to attempt (processing = an attempt running for
# over a second whose outcome is not recorded yet).
QUEUE_STATUSES = tuple(s for s in DeliveryStatus if s in PENDING_STATUSES)
FINAL_OUTCOMES = ("success", "failure", "discarded")

StoreCounter = Callable[[], Awaitable[StatusCounts]]


def status_class(status: int | None) -> str:
    """'2xx'..'5xx' for an HTTP status; 'none' when no (or no sensible) status arrived."""
    if status is None or not 200 <= status <= 599:
        return "none"
    return f"{status // 100}xx"


def _loop_tasks() -> int:
    # Scrapes run on the event loop's thread (the aiohttp handler), so the loop is there.
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return 0


class LoopHistogram(Collector):
    """A histogram for the event loop's thread only, for the two observed on every delivery.

    prometheus_client's Histogram takes a lock per observation and walks its buckets in Python
    (about 2 µs); here a bisect and an increment do (about 0.3 µs). That is safe because these
    are observed only on the event loop's thread, and scrapes run there too (the aiohttp
    handler). The exposition is the same: ``_bucket`` (cumulative), ``_count`` and ``_sum``.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(sorted(float(b) for b in buckets))
        self._counts = [0] * (len(self._bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0
        registry.register(self)

    def observe(self, amount: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation)]

    def collect(self) -> Iterable[Metric]:
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip((*self._bounds, float("inf")), self._counts, strict=True):
            total += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return [
            HistogramMetricFamily(
                self._name, self._documentation, buckets=buckets, sum_value=self._sum
            )
        ]


class _StateCollector(Collector):
    """Gauges read at scrape time: the store's counts (cached) and the engine's breakers."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families(empty=True)

    def collect(self) -> Iterable[Metric]:
        return self._families(empty=False)

    def _families(self, *, empty: bool) -> list[Metric]:
        queue = GaugeMetricFamily(
            "convoyd_queue_depth",
            "Deliveries waiting to be attempted, by status (from the store, refreshed on scrape"
            " at most every few seconds).",
            labels=["status"],
        )
        endpoints = GaugeMetricFamily(
            "convoyd_endpoints", "Endpoints by status.", labels=["status"]
        )
        breakers = GaugeMetricFamily(
            "convoyd_breakers", "Endpoint circuit breakers by state.", labels=["state"]
        )
        tasks = GaugeMetricFamily(
            "convoyd_event_loop_tasks",
            "Tasks alive on the daemon's event loop: flat under steady load, growth is a leak.",
        )
        certificates = GaugeMetricFamily(
            "convoyd_client_certificates",
            "Endpoints' client certificates (mutual TLS) this node delivers with, by state:"
            f" valid, expiring (within {CERTIFICATE_WARNING_DAYS} days), expired.",
            labels=["state"],
        )
        earliest = GaugeMetricFamily(
            "convoyd_client_certificate_earliest_expiry_timestamp_seconds",
            "The soonest not-after of those certificates (Unix time); absent when there is none.",
        )
        if not empty:
            counts = self._metrics.counts
            for status in QUEUE_STATUSES:
                queue.add_metric([status.value], counts.deliveries.get(status.value, 0))
            for ep_status in EndpointStatus:
                endpoints.add_metric([ep_status.value], counts.endpoints.get(ep_status.value, 0))
            states = self._metrics.breaker_states()
            for state in BreakerState:
                breakers.add_metric([state.value], states.get(state.value, 0))
            tasks.add_metric([], _loop_tasks())
            expiries = self._metrics.certificate_expiries()
            now = self._metrics.wall_clock()
            soon = now + CERTIFICATE_WARNING_DAYS * 86400
            expired = sum(t <= now for t in expiries)
            expiring = sum(now < t <= soon for t in expiries)
            certificates.add_metric(["valid"], len(expiries) - expired - expiring)
            certificates.add_metric(["expiring"], expiring)
            certificates.add_metric(["expired"], expired)
            if expiries:
                earliest.add_metric([], min(expiries))
        return [queue, endpoints, breakers, tasks, certificates, earliest]


class Metrics:
    """convoyd's metrics on ``registry`` (never prometheus_client's global default registry)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        version: str = __version__,
        process: bool = True,
        counts_max_age: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self._monotonic = monotonic
        self._counts_max_age = counts_max_age
        self._define_delivery(registry)
        self._define_control_plane(registry)
        self._define_retention(registry)
        self._define_endpoint_auth(registry)
        Gauge(
            "convoyd_build_info", "convoyd's version (always 1).", ["version"], registry=registry
        ).labels(version).set(1)
        if process:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)

        self.counts = StatusCounts(deliveries={}, endpoints={})
        self._counter: StoreCounter | None = None
        self._counted_at = float("-inf")
        self._counting: asyncio.Lock | None = None
        self._breakers: Callable[[], Mapping[str, int]] = dict
        self._certificates: Callable[[], Sequence[float]] = list
        self.wall_clock = wall_clock
        registry.register(_StateCollector(self))

        self._resolve_children()

    def _define_delivery(self, registry: CollectorRegistry) -> None:
        self.events_ingested = Counter(
            "convoyd_events_ingested",
            "Events accepted (durably stored); idempotent replays are not counted.",
            registry=registry,
        )
        self.deliveries = Counter(
            "convoyd_deliveries",
            "Deliveries that reached a final outcome: success, failure (retries exhausted or"
            " 410 Gone) or discarded (the endpoint was paused, inactive or pending).",
            ["outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "convoyd_attempts",
            "Delivery attempts by result and HTTP status class.",
            ["result", "status_class"],
            registry=registry,
        )
        self.attempt_duration = LoopHistogram(
            "convoyd_attempt_duration_seconds",
            "Duration of one delivery attempt (connect, send, response).",
            buckets=ATTEMPT_BUCKETS,
            registry=registry,
        )
        self.delivery_delay = LoopHistogram(
            "convoyd_delivery_delay_seconds",
            "From accepting the event to the delivery's successful attempt.",
            buckets=DELAY_BUCKETS,
            registry=registry,
        )
        self.attempt_errors = Counter(
            "convoyd_attempt_errors",
            "Attempts that failed inside convoyd, not on the network: the request could not be"
            " built or sent, or a sender worker died or did not answer. Each is also counted in"
            " convoyd_attempts as a network error.",
            registry=registry,
        )
        self.rate_limit_waits = Counter(
            "convoyd_rate_limit_waits",
            "Times an endpoint's queue had to wait for its rate limit.",
            registry=registry,
        )
        self.ssrf_blocks = Counter(
            "convoyd_ssrf_blocks",
            "Attempts refused by the SSRF guard (the address is not allowed).",
            registry=registry,
        )

        self.in_flight = Gauge(
            "convoyd_in_flight_attempts",
            "Delivery attempts in flight now.",
            registry=registry,
        )
        self.waiting = Gauge(
            "convoyd_engine_waiting_deliveries",
            "Due deliveries the engine holds in memory, waiting for a slot (their endpoint's"
            " concurrency or rate limit, or room in the in-flight pools).",
            registry=registry,
        )

    def _define_control_plane(self, registry: CollectorRegistry) -> None:
        self.grpc_requests = Counter(
            "convoyd_grpc_requests",
            "gRPC calls handled, by method (short RPC name) and status code.",
            ["method", "code"],
            registry=registry,
        )
        self.grpc_duration = Histogram(
            "convoyd_grpc_request_duration_seconds",
            "gRPC call duration by method (short RPC name).",
            ["method"],
            buckets=GRPC_BUCKETS,
            registry=registry,
        )

    def _define_retention(self, registry: CollectorRegistry) -> None:
        self.retention_pruned = Counter(
            "convoyd_retention_pruned",
            "Rows removed by retention, by kind: events, deliveries, attempts, idempotency_keys.",
            ["kind"],
            registry=registry,
        )
        self.retention_partitions = Counter(
            "convoyd_retention_partitions_dropped",
            "Day partitions of events, deliveries or attempts dropped whole (PostgreSQL).",
            registry=registry,
        )
        self.retention_last_run = Gauge(
            "convoyd_retention_last_run_timestamp_seconds",
            "When the last retention run ended (Unix time); 0 before the first.",
            registry=registry,
        )
        self.retention_duration = Gauge(
            "convoyd_retention_last_run_duration_seconds",
            "How long the last retention run took.",
            registry=registry,
        )
        self.store_size = Gauge(
            "convoyd_store_size_bytes",
            "The store's size on disk: SQLite's database file and WAL; on PostgreSQL convoyd's"
            " tables with their indexes (read every minute at most).",
            registry=registry,
        )

    def _define_endpoint_auth(self, registry: CollectorRegistry) -> None:
        self.token_fetches = Counter(
            "convoyd_oauth2_token_fetches",
            "OAuth2 client-credentials token requests to endpoints' token URLs, by outcome:"
            " fetched; refused (an error status); unreachable (no answer); invalid (a 2xx"
            " without a usable token).",
            ["outcome"],
            registry=registry,
        )
        self._token_fetches = {o: self.token_fetches.labels(o) for o in TOKEN_FETCH_OUTCOMES}

    def oauth2_token_fetch(self, outcome: str) -> None:
        """One token request's outcome (one of TOKEN_FETCH_OUTCOMES)."""
        child = self._token_fetches.get(outcome)
        if child is not None:
            child.inc()

    def _resolve_children(self) -> None:
        # Children resolved once: the hot path is a dict lookup and an increment.
        self._outcomes = {o: self.deliveries.labels(o) for o in FINAL_OUTCOMES}
        self._attempt_children: dict[tuple[str, str], Counter] = {}
        for result, cls in (
            (AttemptResult.SUCCESS, "2xx"),
            (AttemptResult.HTTP_ERROR, "3xx"),
            (AttemptResult.HTTP_ERROR, "4xx"),
            (AttemptResult.HTTP_ERROR, "5xx"),
            (AttemptResult.NETWORK_ERROR, "none"),
            (AttemptResult.TIMEOUT, "none"),
            (AttemptResult.BLOCKED, "none"),
        ):
            self._attempt_child(result.value, cls)
        self._pruned = {k: self.retention_pruned.labels(k) for k in PRUNED_KINDS}
        self._grpc_children: dict[tuple[str, str], Counter] = {}
        self._grpc_durations: dict[str, Histogram] = {}

    # -- wiring ----------------------------------------------------------------------------

    def observe_engine(
        self,
        *,
        in_flight: Callable[[], float],
        waiting: Callable[[], float],
        breakers: Callable[[], Mapping[str, int]],
        certificates: Callable[[], Sequence[float]] = list,
    ) -> None:
        """Reads attempts in flight, deliveries waiting, breaker states and the client
        certificates' not-after times from the engine at scrape time."""
        self.in_flight.set_function(in_flight)
        self.waiting.set_function(waiting)
        self._breakers = breakers
        self._certificates = certificates

    def observe_store(self, counter: StoreCounter) -> None:
        """Queue depth and endpoint states come from ``counter`` (one query), on scrape."""
        self._counter = counter

    def certificate_expiries(self) -> Sequence[float]:
        try:
            return self._certificates()
        except Exception:  # a scrape must not fail because one source did
            log.exception("could not read client certificates")
            return ()

    def breaker_states(self) -> Mapping[str, int]:
        try:
            return self._breakers()
        except Exception:  # a scrape must not fail because one source did
            log.exception("could not read breaker states")
            return {}

    async def refresh(self) -> None:
        """Re-reads the store's counts unless they are younger than ``counts_max_age``."""
        if self._counter is None:
            return
        if self._counting is None:
            self._counting = asyncio.Lock()
        async with self._counting:  # concurrent scrapes share one query
            if self._monotonic() - self._counted_at < self._counts_max_age:
                return
            try:
                self.counts = await self._counter()
            except Exception as exc:
                log.warning("metrics: could not count deliveries and endpoints: %s", exc)
                return
            self._counted_at = self._monotonic()

    async def exposition(self) -> bytes:
        """The text format of every metric, with fresh store counts."""
        await self.refresh()
        return generate_latest(self.registry)

    # -- the hot path ----------------------------------------------------------------------

    def _attempt_child(self, result: str, cls: str) -> Counter:
        child = self._attempt_children.get((result, cls))
        if child is None:
            child = self._attempt_children[(result, cls)] = self.attempts.labels(result, cls)
        return child

    def attempt(self, result: AttemptResult, status: int | None, duration: float) -> None:
        """One finished attempt."""
        self._attempt_child(result.value, status_class(status)).inc()
        self.attempt_duration.observe(duration)
        if result is AttemptResult.BLOCKED:
            self.ssrf_blocks.inc()

    def attempt_error(self) -> None:
        """One of those attempts failed inside convoyd (see attempt_errors)."""
        self.attempt_errors.inc()

    def delivery_succeeded(self, delay: float) -> None:
        self._outcomes["success"].inc()
        self.delivery_delay.observe(max(0.0, delay))

    def delivery_failed(self) -> None:
        self._outcomes["failure"].inc()

    def ingested(self, writes: Sequence[IngestWrite]) -> None:
        """Newly accepted events; their deliveries created DISCARDED are final at once."""
        events = discarded = 0
        for write in writes:
            if write.replay:
                continue
            events += 1
            for d in write.deliveries:
                if d.status is DeliveryStatus.DISCARDED:
                    discarded += 1
        if events:
            self.events_ingested.inc(events)
        if discarded:
            self._outcomes["discarded"].inc(discarded)

    def pruned(self, step: Pruned) -> None:
        """One step of a retention run."""
        for kind, child in self._pruned.items():
            n = getattr(step, kind)
            if n:
                child.inc(n)
        if step.partitions:
            self.retention_partitions.inc(step.partitions)

    def rate_limited(self) -> None:
        self.rate_limit_waits.inc()

    def grpc_request(self, method: str, code: str, duration: float) -> None:
        """One finished gRPC call; ``method`` must come from a bounded set (registered RPCs)."""
        child = self._grpc_children.get((method, code))
        if child is None:
            child = self._grpc_children[(method, code)] = self.grpc_requests.labels(method, code)
        child.inc()
        hist = self._grpc_durations.get(method)
        if hist is None:
            hist = self._grpc_durations[method] = self.grpc_duration.labels(method)
        hist.observe(duration)
