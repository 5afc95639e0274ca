"""Repeated kill -9 at random moments under load, restarting each time.

Kills land during ingest, while attempts are in flight, and during a batch retry. Afterwards
every accepted event has reached every target at least once, each (target, event) saw one
webhook-id only, duplicates stay bounded, and the database passes PRAGMA integrity_check.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
from collections import defaultdict
from collections.abc import Awaitable, Callable

import pytest

from convoyd.client import Client, ConvoydClientError, event_request
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess, record_figures
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.e2e

TARGETS = 2
CYCLES = 3
PER_CYCLE = 800


async def test_repeated_kill_9_loses_nothing(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    seed = int(os.environ.get("CONVOYD_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"seed={seed}")
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    receiver = await receivers(delay=0.003)
    flaky = await receivers(script=[500] * 200)  # fails first: its deliveries need retries
    accepted: list[int] = []
    running = daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        await client.create_endpoint(pb.Endpoint(url=f"{receiver.url}/0", owner_id="crash"))
        await client.create_endpoint(
            pb.Endpoint(
                url=f"{flaky.url}/1",
                owner_id="crash",
                retry_policy=pb.RetryPolicy(linear=pb.LinearRetry(max_retries=50)),
            )
        )
    kills = 0
    for cycle in range(CYCLES):
        async with Client(running.grpc_target, token=running.token) as client:
            base = cycle * PER_CYCLE

            async def ingest(client: Client = client, base: int = base) -> None:
                for start in range(base, base + PER_CYCLE, 50):
                    batch = [
                        event_request(event_type="t", data={"i": i}, owner_id="crash")
                        for i in range(start, start + 50)
                    ]
                    try:
                        await client.batch_create_events(batch)
                    except ConvoydClientError:
                        return
                    accepted.extend(range(start, start + 50))

            loader = asyncio.create_task(ingest())
            if cycle == 2:  # this time, die during a batch retry of the flaky endpoint
                await loader
                page = await client.list_endpoints(owner_id="crash")
                flaky_id = next(e.id for e in page.endpoints if "/1" in e.url)
                flaky.script.clear()
                await client.pause_endpoint(flaky_id)
                await client.resume_endpoint(flaky_id)
                await client.batch_retry_deliveries(endpoint_id=flaky_id, dry_run=False)
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGKILL)
            kills += 1
            await asyncio.gather(loader, return_exceptions=True)
        daemon.stop()
        running = daemon.start()
    flaky.script.clear()

    def delivered() -> dict[tuple[str, int], set[str]]:
        seen: dict[tuple[str, int], set[str]] = defaultdict(set)
        for r in (*receiver.requests, *flaky.requests):
            seen[(r.path, json.loads(r.body)["i"])].add(r.headers["webhook-id"])
        return seen

    expected = {(f"/hook/{n}", i) for n in range(TARGETS) for i in accepted}
    await eventually(lambda: expected <= set(delivered()), timeout=120, interval=0.25)
    seen = delivered()
    assert all(len(ids) == 1 for ids in seen.values()), "a redelivery changed its webhook-id"
    successes = [r for r in (*receiver.requests, *flaky.requests) if r.path == "/hook/0"]
    duplicates = len(successes) - len({json.loads(r.body)["i"] for r in successes})
    print(f"kills={kills} accepted={len(accepted)} duplicates_on_healthy_target={duplicates}")
    assert duplicates <= kills * 600  # at most what was in flight or unrecorded at each kill
    assert daemon.stop() == 0
    db = sqlite3.connect(daemon.data_dir / "convoyd.db")
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    assert integrity == "ok"
    record_figures(
        "crash",
        {
            "seed": seed,
            "kills": kills,
            "events_accepted": len(accepted),
            "deliveries_expected": len(expected),
            "requests_received": len(receiver.requests) + len(flaky.requests),
            "duplicates_on_healthy_target": duplicates,
            "lost": 0,
            "integrity_check": integrity,
        },
    )
