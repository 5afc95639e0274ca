"""Operator events (docs/operator-events.md): convoyd's own events, through the real daemon in
process, to loopback receivers; the cooldown and the retry on UNAVAILABLE with a given clock."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import duration_pb2

from convoyd.client import Client
from convoyd.core.breaker import BreakerConfig
from convoyd.core.model import Endpoint, EndpointSpec, EndpointStatus, EventInput
from convoyd.errors import ConfigError, NotFoundError, UnavailableError
from convoyd.reload import effective, restart_only_changes
from convoyd.service import operator_events as op
from convoyd.settings import OperatorEventsSettings, Settings, load
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import LOOPBACK_ALLOWED, running_app
from tests.receivers import Receiver, eventually

Make = Callable[..., Awaitable[Receiver]]
FAST_RETRIES = pb.RetryPolicy(
    schedule=pb.ScheduleRetry(delays=[duration_pb2.Duration(nanos=50_000_000)] * 3), jitter=0.0
)
API_KEY = "k-very-secret-value"
HEADER_VALUE = "custom-header-value"


@contextlib.asynccontextmanager
async def operator_client(data_dir: Path, **overrides: object) -> AsyncIterator[Client]:
    """convoyd delivering to loopback, with operator events for owner "ops"."""
    async with (
        running_app(
            data_dir,
            delivery=LOOPBACK_ALLOWED,
            operator_events=OperatorEventsSettings(owner_id="ops"),
            **overrides,
        ) as (_, running),
        Client(running.grpc_target, token=running.token) as c,
    ):
        yield c


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with operator_client(tmp_path / "data") as c:
        yield c


async def endpoint(client: Client, url: str, owner: str, **fields: Any) -> pb.Endpoint:
    return await client.create_endpoint(pb.Endpoint(url=url, owner_id=owner, **fields))


def bodies(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.requests]


async def received(receiver: Receiver, event_type: str) -> dict[str, Any]:
    """The first operator event of ``event_type`` the receiver got, once it has."""
    await eventually(lambda: any(b["type"] == event_type for b in bodies(receiver)))
    return next(b for b in bodies(receiver) if b["type"] == event_type)


@pytest.mark.both_stores
async def test_gone_is_disabled_then_paused_and_resumed(client: Client, receivers: Make) -> None:
    ops, gone = await receivers(), await receivers(default_status=410)
    await endpoint(client, ops.url, "ops")
    customer = await endpoint(
        client,
        gone.url,
        "acme",
        name="acme orders",
        authentication=pb.EndpointAuthentication(
            api_key=pb.ApiKeyAuthentication(header_name="X-Api-Key", header_value=API_KEY)
        ),
        headers={"X-Custom": HEADER_VALUE},
    )
    event = await client.create_event(event_type="order.paid", data={}, owner_id="acme")

    disabled = await received(ops, op.DISABLED)
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries
    assert disabled["endpoint"] == {
        "id": customer.id,
        "owner_id": "acme",
        "name": "acme orders",
        "url": gone.url,
    }
    assert (disabled["status"], disabled["previous_status"]) == ("inactive", "active")
    assert delivery.id in disabled["reason"] and "410" in disabled["reason"]
    assert disabled["time"].endswith("Z")
    raw = ops.requests[0].body.decode()
    assert API_KEY not in raw and HEADER_VALUE not in raw and "secret" not in raw
    assert ops.requests[0].headers["webhook-signature"]  # signed like any other event

    await client.pause_endpoint(customer.id, reason="maintenance")
    paused = await received(ops, op.PAUSED)
    assert (paused["status"], paused["reason"]) == ("paused", "maintenance")
    await client.resume_endpoint(customer.id)
    resumed = await received(ops, op.RESUMED)
    assert (resumed["status"], resumed["previous_status"]) == ("active", "paused")
    # The 410 FAILURE is told as disabled only, never as an exhausted delivery.
    assert sorted(b["type"] for b in bodies(ops)) == sorted([op.DISABLED, op.PAUSED, op.RESUMED])
    events = (await client.list_events(owner_id="ops")).events
    assert sorted(e.event_type for e in events) == sorted([op.DISABLED, op.PAUSED, op.RESUMED])


@pytest.mark.both_stores
async def test_exhausted_delivery_names_delivery_event_and_error(
    client: Client, receivers: Make
) -> None:
    ops, failing = await receivers(), await receivers(default_status=500)
    await endpoint(client, ops.url, "ops")
    customer = await endpoint(client, failing.url, "acme", retry_policy=FAST_RETRIES)
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[customer.id])

    exhausted = await received(ops, op.EXHAUSTED)
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries
    assert delivery.status == dpb.DELIVERY_STATUS_FAILURE
    assert (exhausted["delivery_id"], exhausted["event_id"]) == (delivery.id, event.id)
    assert exhausted["endpoint"]["id"] == customer.id
    assert exhausted["attempt_count"] == 4 == len(failing.requests)
    assert exhausted["last_http_status"] == 500
    assert "500" in exhausted["last_error"]
    assert "no attempts left" in exhausted["reason"]
    assert exhausted["status"] == "active"


@pytest.mark.both_stores
async def test_event_types_filter_operator_events(client: Client, receivers: Make) -> None:
    only_pauses, everything = await receivers(), await receivers()
    await endpoint(client, only_pauses.url, "ops", event_types=[op.PAUSED])
    await endpoint(client, everything.url, "ops")
    customer = await endpoint(client, "https://customer.invalid/hook", "acme")
    await client.pause_endpoint(customer.id)
    await client.resume_endpoint(customer.id)
    await everything.wait_for(2)
    await only_pauses.wait_for(1)
    assert [b["type"] for b in bodies(only_pauses)] == [op.PAUSED]


@pytest.mark.both_stores
async def test_operator_endpoints_never_report_themselves(client: Client, receivers: Make) -> None:
    good, gone, failing = (
        await receivers(),
        await receivers(default_status=410),
        await receivers(default_status=500),
    )
    await endpoint(client, good.url, "ops")
    ops_gone = await endpoint(client, gone.url, "ops")
    ops_failing = await endpoint(client, failing.url, "ops", retry_policy=FAST_RETRIES)
    customer = await endpoint(client, "https://customer.invalid/hook", "acme")

    await client.pause_endpoint(customer.id)

    async def both_ended() -> bool:
        gone_now = await client.get_endpoint(ops_gone.id)
        failed = (await client.list_deliveries(endpoint_id=ops_failing.id)).deliveries
        return gone_now.status == pb.ENDPOINT_STATUS_INACTIVE and [d.status for d in failed] == [
            dpb.DELIVERY_STATUS_FAILURE
        ]

    await eventually(both_ended)
    await client.resume_endpoint(customer.id)  # told after anything about ops_* would be
    await received(good, op.RESUMED)
    assert [b["type"] for b in bodies(good)] == [op.PAUSED, op.RESUMED]
    assert all(b["endpoint"]["id"] == customer.id for b in bodies(good))


@pytest.mark.both_stores
async def test_circuit_opened_is_told(tmp_path: Path, receivers: Make) -> None:
    # Open after 2 failures in a row, and stay open 10 minutes: no probe during the test.
    breaker = BreakerConfig(consecutive_failures=2, cooldown=600, max_cooldown=600)
    async with operator_client(tmp_path / "data", breaker=breaker) as client:
        await _circuit_opened(client, receivers)


async def _circuit_opened(client: Client, receivers: Make) -> None:
    ops, failing = await receivers(), await receivers(default_status=500)
    await endpoint(client, ops.url, "ops")
    customer = await endpoint(client, failing.url, "acme")
    for _ in range(2):  # two first attempts failing in a row open the breaker
        await client.create_event(event_type="t", data={}, endpoint_ids=[customer.id])
    opened = await received(ops, op.CIRCUIT_OPENED)
    assert opened["endpoint"]["id"] == customer.id
    assert opened["status"] == "active"
    assert (
        await client.get_endpoint(customer.id)
    ).circuit_breaker.state == pb.CIRCUIT_BREAKER_STATE_OPEN


# -- the parts alone, with a given clock -------------------------------------------------


class Ingested:
    """Where OperatorEvents' events go: a list, after ``failures`` UNAVAILABLE answers."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[EventInput] = []
        self.events: list[EventInput] = []

    async def __call__(self, events: Sequence[EventInput]) -> object:
        self.calls.extend(events)
        if self.failures:
            self.failures -= 1
            raise UnavailableError("the store is down")
        self.events.extend(events)
        return None


async def _missing(endpoint_id: str) -> Endpoint:
    raise NotFoundError(f"endpoint {endpoint_id} not found")


def _endpoint(endpoint_id: str, owner: str = "acme") -> Endpoint:
    return Endpoint(
        id=endpoint_id,
        spec=EndpointSpec(url="https://x.invalid/", owner_id=owner),
        status=EndpointStatus.ACTIVE,
        status_reason="created",
        status_changed_at=0.0,
        secrets=(),
        created_at=0.0,
        updated_at=0.0,
    )


def _operator(ingest: Ingested, now: list[float], owner: str = "ops") -> op.OperatorEvents:
    return op.OperatorEvents(
        owner_id=lambda: owner,
        cooldown=lambda: 30.0,
        clock=lambda: now[0],
        rng=random.Random(1),
        ingest=ingest,
        lookup=_missing,
    )


async def test_circuit_opened_at_most_once_per_cooldown() -> None:
    ingest, now = Ingested(), [1000.0]
    operator = _operator(ingest, now)
    operator.start()
    a, b = _endpoint("ep_a"), _endpoint("ep_b")
    for at in (1000.0, 1010.0, 1029.0):
        now[0] = at
        operator.breaker_opened(a)
    operator.breaker_opened(b)
    now[0] = 1031.0  # a cooldown after the first: told again
    operator.breaker_opened(a)
    operator.breaker_opened(_endpoint("ep_ops", owner="ops"))  # the operator's own: never
    await operator.stop(5.0)
    sent = [json.loads(e.data) for e in ingest.events]
    told = [(b["endpoint"]["id"], b["time"]) for b in sent]
    assert told == [
        ("ep_a", op.rfc3339(1000.0)),
        ("ep_b", op.rfc3339(1029.0)),
        ("ep_a", op.rfc3339(1031.0)),
    ]
    assert all(e.owner_id == "ops" and e.event_type == op.CIRCUIT_OPENED for e in ingest.events)


def test_breakers_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(op, "MAX_BREAKERS_TRACKED", 3)
    operator = _operator(Ingested(), [0.0])
    for i in range(10):
        operator.breaker_opened(_endpoint(f"ep_{i}"))
    assert len(operator._opened_at) == 3


async def test_unavailable_is_tried_again_with_one_idempotency_key() -> None:
    ingest = Ingested(failures=2)
    operator = _operator(ingest, [5.0])
    operator.start()
    operator.breaker_opened(_endpoint("ep_a"))
    await eventually(lambda: ingest.events)
    await operator.stop(5.0)
    assert len(ingest.calls) == 3 and len(ingest.events) == 1
    assert len({e.idempotency_key for e in ingest.calls}) == 1


def test_a_full_queue_drops_instead_of_blocking() -> None:
    operator = op.OperatorEvents(
        owner_id=lambda: "ops",
        cooldown=lambda: 0.0,
        clock=lambda: 0.0,
        rng=random.Random(1),
        ingest=Ingested(),
        lookup=_missing,
        queue_size=2,
    )
    for i in range(5):
        operator.breaker_opened(_endpoint(f"ep_{i}"))
    assert operator.dropped == 3


def test_off_when_no_owner_is_set() -> None:
    operator = _operator(Ingested(), [0.0], owner="")
    operator.breaker_opened(_endpoint("ep_a"))
    assert operator.dropped == 0 and operator._queue.qsize() == 0


def test_owner_id_setting() -> None:
    assert load(env={}).operator_events.owner_id == ""
    env = {"CONVOYD_OPERATOR_EVENTS_OWNER_ID": "ops"}
    assert load(env=env).operator_events.owner_id == "ops"
    with pytest.raises(ConfigError, match=r"operator_events\.owner_id"):
        OperatorEventsSettings(owner_id="has space")


def test_owner_id_is_reloadable(tmp_path: Path) -> None:
    old = Settings(data_dir=tmp_path)
    new = dataclasses.replace(old, operator_events=OperatorEventsSettings(owner_id="ops"))
    assert restart_only_changes(old, new) == []
    assert effective(old, new).operator_events.owner_id == "ops"
