"""A delivery convoyd cannot send (a header byte the HTTP client refuses, a broken signing secret,
an unreadable stored body) fails like any attempt: recorded, retried, FAILURE at the end; it
never keeps an in-flight slot, and a healthy endpoint beside it keeps getting its deliveries.

The bad values are written to the store directly, past the API's validation: the defence must
hold whatever reaches the rows (an older convoyd, a rule missed, a restore). Each test runs with
the in-process Sender and with a sender worker process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from google.protobuf import duration_pb2

from convoyd.app import App
from convoyd.client import Client
from convoyd.core.breaker import BreakerConfig
from convoyd.core.model import ApiKeyAuth, Endpoint, Secret
from convoyd.settings import DeliverySettings
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import Running, running_app
from tests.receivers import Receiver, eventually

Make = Callable[..., Awaitable[Receiver]]
RETRIES = 2  # so 3 attempts in all
FAST_RETRIES = pb.RetryPolicy(
    schedule=pb.ScheduleRetry(delays=[duration_pb2.Duration(nanos=50_000_000)] * RETRIES),
    jitter=0.0,
)
# The breaker must not hold the poisoned deliveries back during the test; that it counts their
# failures is checked through its window instead.
PATIENT_BREAKER = BreakerConfig(min_requests=1000, consecutive_failures=1000)


@pytest.fixture(params=[0, 1], ids=["in-process", "worker-pool"])
def workers(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def settings(workers: int) -> dict[str, object]:
    return {
        "delivery": DeliverySettings(
            allow_cidrs=("127.0.0.0/8",),
            sender_workers=workers,
            max_in_flight=4,  # few slots: one pinned by a poisoned attempt would show at once
            max_concurrency_per_endpoint=4,
        ),
        "breaker": PATIENT_BREAKER,
    }


@pytest.fixture
async def convoyd(tmp_path: Path, workers: int) -> AsyncIterator[tuple[App, Running, Client]]:
    async with running_app(tmp_path / "data", **settings(workers)) as (app, running):  # noqa: SIM117 - the client needs the app's address
        async with Client(running.grpc_target, token=running.token) as client:
            yield app, running, client


async def poison(app: App, endpoint_id: str, **spec: object) -> Endpoint:
    """Writes spec fields (or secrets) straight to the store and tells the engine."""
    secrets = spec.pop("secrets", None)

    def change(e: Endpoint) -> Endpoint:
        e = dataclasses.replace(e, spec=dataclasses.replace(e.spec, **spec))
        return e if secrets is None else dataclasses.replace(e, secrets=secrets)

    endpoint = await app.store.modify_endpoint(endpoint_id, change)
    return app.endpoints.notify_changed(endpoint)


async def all_failed(client: Client, delivery_ids: list[str]) -> bool:
    for delivery_id in delivery_ids:
        d = await client.get_delivery(delivery_id)
        if d.status != dpb.DELIVERY_STATUS_FAILURE:
            return False
    return True


async def first_delivery(client: Client, event_id: str) -> str:
    page = await client.list_deliveries(event_id=event_id)
    return page.deliveries[0].id


async def settled(client: Client, delivery_id: str) -> None:
    async def check() -> bool:
        d = await client.get_delivery(delivery_id)
        return d.status == dpb.DELIVERY_STATUS_SUCCESS

    await eventually(check, timeout=20)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


async def test_unsendable_deliveries_fail_and_free_their_slots(
    convoyd: tuple[App, Running, Client], receivers: Make
) -> None:
    app, _, client = convoyd
    healthy_rx, header_rx, key_rx, secret_rx = [await receivers() for _ in range(4)]
    healthy = await client.create_endpoint(pb.Endpoint(url=healthy_rx.url))
    made = [
        await client.create_endpoint(pb.Endpoint(url=rx.url, retry_policy=FAST_RETRIES))
        for rx in (header_rx, key_rx, secret_rx)
    ]
    await poison(app, made[0].id, headers={"X-P": "a\x7fb"})
    await poison(app, made[1].id, auth=ApiKeyAuth(header_name="X-Api-Key", header_value="k\x01y"))
    await poison(
        app, made[2].id, secrets=(Secret(id="sec_bad", value="not-a-whsec", created_at=0.0),)
    )

    poisoned: list[str] = []
    for round_ in range(6):  # more poisoned attempts than slots, healthy events between them
        for endpoint in made:
            event = await client.create_event(
                event_type="t", data={"r": round_}, endpoint_ids=[endpoint.id]
            )
            poisoned.append(await first_delivery(client, event.id))
        await client.create_event(event_type="t", data={"r": round_}, endpoint_ids=[healthy.id])
    await healthy_rx.wait_for(6)

    await eventually(lambda: all_failed(client, poisoned), timeout=20)
    assert header_rx.requests == key_rx.requests == secret_rx.requests == []
    for delivery_id, text in zip(
        poisoned[:3],
        [
            "request header X-P has a control character in its value",
            "request header X-Api-Key has a control character in its value",
            "could not build the request (ValueError)",
        ],
        strict=True,
    ):
        d = await client.get_delivery(delivery_id)
        assert d.attempt_count == RETRIES + 1
        attempts = (await client.list_delivery_attempts(delivery_id)).attempts
        assert len(attempts) == RETRIES + 1
        assert all(text in a.error for a in attempts), [a.error for a in attempts]
        assert "k\x01y" not in repr(attempts)
    # The breaker counted every one of them as a failure.
    for endpoint in made:
        status = app.engine.breaker_status(endpoint.id)
        assert status is not None
        assert status.window_attempts == 6 * (RETRIES + 1)
        assert status.failure_rate == 1.0

    await eventually(lambda: app.engine.in_flight == 0)
    exposition = (await app.metrics.exposition()).decode()
    assert metric(exposition, "convoyd_in_flight_attempts") == 0
    assert metric(exposition, "convoyd_attempt_errors_total") == 18 * (RETRIES + 1)
    # And the healthy endpoint still gets what comes next, at once.
    await client.create_event(event_type="t", data={"after": 1}, endpoint_ids=[healthy.id])
    await healthy_rx.wait_for(7)


async def test_after_a_restart_unsendable_stored_deliveries_fail_and_nothing_is_stuck(
    tmp_path: Path, workers: int, receivers: Make
) -> None:
    data_dir = tmp_path / "data"
    hang = await receivers(hang=asyncio.Event())
    healthy_rx = await receivers()
    async with running_app(data_dir, **settings(workers)) as (_, running):  # noqa: SIM117 - the client needs the app's address
        async with Client(running.grpc_target, token=running.token) as client:
            target = await client.create_endpoint(
                pb.Endpoint(url=hang.url, retry_policy=FAST_RETRIES)
            )
            healthy = await client.create_endpoint(pb.Endpoint(url=healthy_rx.url))
            events = [
                await client.create_event(
                    event_type="t", data={"i": i}, endpoint_ids=[target.id], headers={"X-P": "ok"}
                )
                for i in range(3)
            ]
            await hang.wait_for(3)  # in flight when convoyd stops: pending in the store
    # Rows a validation never saw: a refused header byte, a body that cannot be read back.
    with sqlite3.connect(data_dir / "convoyd.db") as db:
        db.execute(
            "UPDATE events SET headers = ? WHERE id = ?",
            (json.dumps({"X-P": "a\x7fb"}), events[0].id),
        )
        db.execute("UPDATE events SET headers = 'not json' WHERE id = ?", (events[1].id,))
    assert hang.hang is not None
    hang.hang.set()  # from now on the receiver answers at once

    async with running_app(data_dir, **settings(workers)) as (app, running):  # noqa: SIM117 - the client needs the app's address
        async with Client(running.grpc_target, token=running.token) as client:
            for i in range(5):
                await client.create_event(event_type="t", data={"h": i}, endpoint_ids=[healthy.id])
            await healthy_rx.wait_for(5)
            ids = [await first_delivery(client, e.id) for e in events]
            await eventually(lambda: all_failed(client, ids[:2]), timeout=20)
            for delivery_id, text in zip(
                ids[:2],
                ["request header X-P has a control character", "could not load the event body"],
                strict=True,
            ):
                attempts = (await client.list_delivery_attempts(delivery_id)).attempts
                assert any(text in a.error for a in attempts), [a.error for a in attempts]
            # The good event beside them (its body loaded in the same batch) is delivered.
            await settled(client, ids[2])
            assert b'{"i":2}' in [r.body for r in hang.requests[3:]]
            await eventually(lambda: app.engine.in_flight == 0)
            exposition = (await app.metrics.exposition()).decode()
            assert metric(exposition, "convoyd_in_flight_attempts") == 0
