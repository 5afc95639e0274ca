"""/metrics of the real daemon: every family exists with sane values, and no label is an id."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
import pytest
import yaml
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from convoyd import __version__
from convoyd.client import Client, duration
from convoyd.core.breaker import BreakerConfig
from convoyd.metrics import ATTEMPT_BUCKETS, LoopHistogram
from convoyd.v1 import endpoint_pb2 as pb
from convoyd.v1 import endpoint_pb2_grpc
from tests.conftest import LOOPBACK_ALLOWED, DaemonProcess, running_app
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.e2e

ALERTS = Path(__file__).parent.parent / "deploy" / "prometheus" / "convoyd-alerts.yml"

FAMILIES = {
    # family name as the parser reports it (counters lose _total) → type
    "convoyd_events_ingested": "counter",
    "convoyd_deliveries": "counter",
    "convoyd_attempts": "counter",
    "convoyd_attempt_duration_seconds": "histogram",
    "convoyd_delivery_delay_seconds": "histogram",
    "convoyd_queue_depth": "gauge",
    "convoyd_endpoints": "gauge",
    "convoyd_breakers": "gauge",
    "convoyd_rate_limit_waits": "counter",
    "convoyd_ssrf_blocks": "counter",
    "convoyd_grpc_requests": "counter",
    "convoyd_grpc_request_duration_seconds": "histogram",
    "convoyd_build_info": "gauge",
    "convoyd_in_flight_attempts": "gauge",
    "convoyd_retention_pruned": "counter",
    "convoyd_retention_partitions_dropped": "counter",
    "convoyd_retention_last_run_timestamp_seconds": "gauge",
    "convoyd_retention_last_run_duration_seconds": "gauge",
    "convoyd_store_size_bytes": "gauge",
    "convoyd_oauth2_token_fetches": "counter",
    "convoyd_client_certificates": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds": "counter",
    "python_info": "gauge",
}


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: list[Sample] = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert found, f"no sample {name}{labels}"
        return sum(found)


async def scrape(http_url: str) -> Scrape:
    async with aiohttp.ClientSession() as http, http.get(f"{http_url}/metrics") as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=")
        return Scrape(await reply.text())


async def test_metrics_of_the_real_daemon(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    receiver = await receivers()
    running = daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        good = await client.create_endpoint(pb.Endpoint(url=receiver.url, owner_id="acme"))
        # ::1 is outside the allow-list: refused before any connection is made.
        blocked = await client.create_endpoint(pb.Endpoint(url="http://[::1]:9/h", owner_id="x"))
        paused = await client.create_endpoint(pb.Endpoint(url=receiver.url, owner_id="acme"))
        await client.pause_endpoint(paused.id)
        await client.create_event(event_type="order.created", data={"n": 1}, owner_id="acme")
        await client.create_event(event_type="order.created", data={}, endpoint_ids=[blocked.id])
        await receiver.wait_for(1)
    async with running.channel() as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await endpoint_pb2_grpc.EndpointServiceStub(channel).GetEndpoint(
                pb.GetEndpointRequest(endpoint_id=good.id), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    async def settled() -> Scrape | None:
        got = await scrape(running.http_url)
        done = got.value("convoyd_deliveries_total", outcome="success") >= 1
        return got if done and got.value("convoyd_ssrf_blocks_total") >= 1 else None

    await eventually(settled)
    metrics = await settled()
    assert metrics is not None

    for name, kind in FAMILIES.items():
        assert name in metrics.families, f"missing metric family {name}"
        assert metrics.families[name].type == kind, name
    assert metrics.value("convoyd_events_ingested_total") == 2
    assert metrics.value("convoyd_attempts_total", result="success", status_class="2xx") >= 1
    assert metrics.value("convoyd_attempts_total", result="blocked", status_class="none") >= 1
    assert metrics.value("convoyd_deliveries_total", outcome="discarded") == 1  # the paused one
    assert metrics.value("convoyd_attempt_duration_seconds_count") >= 2
    assert metrics.value("convoyd_delivery_delay_seconds_count") >= 1
    assert 0 < metrics.value("convoyd_delivery_delay_seconds_sum") < 30
    assert metrics.value("convoyd_endpoints", status="active") == 2
    assert metrics.value("convoyd_endpoints", status="paused") == 1
    assert metrics.value("convoyd_breakers", state="closed") == 3
    assert metrics.value("convoyd_breakers", state="open") == 0
    assert metrics.value("convoyd_queue_depth") >= 0
    assert metrics.value("convoyd_in_flight_attempts") >= 0
    assert metrics.value("convoyd_build_info", version=__version__) == 1
    assert metrics.value("process_resident_memory_bytes") > 1_000_000
    assert metrics.value("convoyd_grpc_requests_total", method="CreateEndpoint", code="OK") == 3
    assert metrics.value("convoyd_grpc_requests_total", method="CreateEvent", code="OK") == 2
    assert (
        metrics.value("convoyd_grpc_requests_total", method="GetEndpoint", code="UNAUTHENTICATED")
        == 1
    )
    assert metrics.value("convoyd_grpc_request_duration_seconds_count", method="CreateEvent") == 2

    ids = re.compile(r"^(ep|ev|dl|at|tok)_")
    for sample in metrics.samples:
        for key, value in sample.labels.items():
            assert not ids.match(value), f"{sample.name} has an id as label {key}={value}"
    assert daemon.stop() == 0


async def test_alert_rules_use_only_metrics_the_daemon_exports(daemon: DaemonProcess) -> None:
    running = daemon.start()
    metrics = await scrape(running.http_url)
    # A labelled family without children yet has no samples: go by the family's type.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    exported = {s.name for s in metrics.samples} | {
        family.name + suffix
        for family in metrics.families.values()
        for suffix in suffixes.get(family.type, ("",))
    }
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 6
    used: set[str] = set()
    for rule in alerts:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"].get("summary"), rule["alert"]
        used |= set(re.findall(r"\b(convoyd_[a-z_]+)", rule["expr"]))
    assert used, "the rules use no convoyd metric"
    missing = sorted(name for name in used if name not in exported)
    assert not missing, f"alert rules use metrics the daemon does not export: {missing}"
    assert any("up{" in rule["expr"] or "up ==" in rule["expr"] for rule in alerts)
    assert daemon.stop() == 0


async def test_metrics_on_their_own_listener(daemon: DaemonProcess) -> None:
    daemon.env["CONVOYD_METRICS_LISTEN"] = "127.0.0.1:0"
    running = daemon.start()
    info = json.loads((daemon.data_dir / "run.json").read_text())
    metrics = await scrape(f"http://{info['metrics']}")
    assert "convoyd_build_info" in metrics.families
    async with aiohttp.ClientSession() as http, http.get(f"{running.http_url}/metrics") as reply:
        assert reply.status == 404  # not on the main listener any more
    assert daemon.stop() == 0


async def test_rate_limit_waits_and_open_breakers_are_counted(
    tmp_path: Path, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    failing = await receivers(default_status=500)
    limited = await receivers()
    breaker = BreakerConfig(consecutive_failures=2, cooldown=60, max_cooldown=60)
    async with (
        running_app(tmp_path / "data", delivery=LOOPBACK_ALLOWED, breaker=breaker) as (_, running),
        Client(running.grpc_target, token=running.token) as client,
    ):
        bad = await client.create_endpoint(pb.Endpoint(url=failing.url))
        slow = await client.create_endpoint(
            pb.Endpoint(url=limited.url, rate_limit=1, rate_limit_duration=duration(60))
        )
        for _ in range(2):
            await client.create_event(event_type="t", data={}, endpoint_ids=[bad.id, slow.id])
        await failing.wait_for(2)
        await limited.wait_for(1)

        async def counted() -> bool:
            got = await scrape(running.http_url)
            return (
                got.value("convoyd_breakers", state="open") == 1
                and got.value("convoyd_rate_limit_waits_total") >= 1
            )

        await eventually(counted)
        metrics = await scrape(running.http_url)
        assert metrics.value("convoyd_breakers", state="closed") == 1
        assert metrics.value("convoyd_attempts_total", result="http_error", status_class="5xx") == 2
        assert len(limited.requests) == 1  # the second waits for the limit
        # The second delivery to the limited endpoint waits in the queue.
        assert metrics.value("convoyd_queue_depth", status="scheduled") >= 1


@pytest.mark.parametrize(
    "observations",
    [
        [],
        [0.001, 0.005, 0.0051, 0.02, 0.5, 2.0, 30.0, 31.0, 1e9],
        [0.005] * 3 + [15.0],  # on the bounds: le is inclusive
    ],
)
def test_loop_histogram_exposes_what_prometheus_client_would(observations: list[float]) -> None:
    theirs_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    theirs = Histogram("h_seconds", "doc", buckets=ATTEMPT_BUCKETS, registry=theirs_registry)
    ours = LoopHistogram("h_seconds", "doc", buckets=ATTEMPT_BUCKETS, registry=ours_registry)
    for value in observations:
        theirs.observe(value)
        ours.observe(value)

    def samples(registry: CollectorRegistry) -> list[Sample]:
        text = generate_latest(registry).decode()
        return [
            s
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    assert samples(ours_registry) == samples(theirs_registry)
