"""The cluster's metrics, on the daemon's registry: nodes alive, shards this node holds,
hand-offs and lease losses, and how late notifications from other nodes arrive."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from convoyd.cluster.membership import Membership


class _MembershipCollector(Collector):
    def __init__(self, membership: Membership, nodes_alive: Callable[[], int]) -> None:
        self._membership = membership
        self._nodes_alive = nodes_alive

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        m = self._membership
        yield GaugeMetricFamily(
            "convoyd_cluster_nodes_alive",
            "Nodes whose heartbeat is within the lease, as this node last saw.",
            value=self._nodes_alive(),
        )
        yield GaugeMetricFamily(
            "convoyd_cluster_shards_held", "Shards this node holds now.", value=len(m.held)
        )
        yield GaugeMetricFamily(
            "convoyd_cluster_shards_total", "Shards the endpoints hash into.", value=m.total_shards
        )
        yield CounterMetricFamily(
            "convoyd_cluster_rebalances",
            "Hand-offs of shards by this node to a node below its fair share.",
            value=m.rebalances,
        )
        yield CounterMetricFamily(
            "convoyd_cluster_lease_losses",
            "Shards this node lost without handing them back (its lease lapsed or was taken).",
            value=m.lease_losses,
        )


class ClusterMetrics:
    def __init__(
        self, registry: CollectorRegistry, membership: Membership, nodes_alive: Callable[[], int]
    ) -> None:
        registry.register(_MembershipCollector(membership, nodes_alive))
        self.feed_lag = Histogram(
            "convoyd_cluster_feed_lag_seconds",
            "From another node's notification being sent (its commit) to its arrival here.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
