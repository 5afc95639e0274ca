"""The sender worker pool: real child processes, real loopback receivers."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from convoyd.core.outcome import ErrorKind
from convoyd.delivery.sender import OutboundRequest
from convoyd.delivery.workers import WorkerPoolSender
from tests.receivers import Receiver

Make = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPoolSender]:
    sender = WorkerPoolSender(workers=2, allow_cidrs=["127.0.0.0/8"], user_agent="convoyd-test")
    await sender.start()
    yield sender
    await sender.close()


def post(url: str, body: bytes = b"{}", timeout: float = 5.0) -> OutboundRequest:
    return OutboundRequest(
        url=url, headers=[("Content-Type", "application/json")], body=body, timeout=timeout
    )


async def test_requests_are_sent_by_the_workers_and_reported_back(
    pool: WorkerPoolSender, receivers: Make
) -> None:
    receiver = await receivers(script=[500])
    reports = await asyncio.gather(
        *(pool.send(post(receiver.url, f'{{"i": {i}}}'.encode())) for i in range(50))
    )
    assert (
        sorted(r.status for r in reports) == [200] * 49 + [500]
        or sorted(r.status or 0 for r in reports).count(200) == 49
    )
    assert {r.remote_address for r in reports} == {"127.0.0.1"}
    assert sorted(r.body for r in receiver.requests) == sorted(
        f'{{"i": {i}}}'.encode() for i in range(50)
    )


async def test_a_dead_worker_fails_its_attempts_and_is_replaced(
    pool: WorkerPoolSender, receivers: Make
) -> None:
    hung = await receivers(hang=asyncio.Event())
    ok = await receivers()
    attempts = [asyncio.create_task(pool.send(post(hung.url, timeout=30))) for _ in range(4)]
    await hung.wait_for(4)
    for worker in pool._workers:  # the test kills the children on purpose
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGKILL)
    reports = await asyncio.wait_for(asyncio.gather(*attempts), 10)
    assert all(r.error_kind is ErrorKind.NETWORK and "worker exited" in r.error for r in reports)

    async def healthy_again() -> bool:
        report = await pool.send(post(ok.url))
        return report.status == 200

    for _ in range(50):
        if await healthy_again():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the pool did not recover")


async def test_allow_list_changes_reach_the_workers(
    pool: WorkerPoolSender, receivers: Make
) -> None:
    receiver = await receivers()
    assert (await pool.send(post(receiver.url))).status == 200
    pool.set_allow_cidrs([])
    await asyncio.sleep(0.2)  # the new list travels to the children
    blocked = await pool.send(post(receiver.url))
    assert blocked.error_kind is ErrorKind.BLOCKED
    assert len(receiver.requests) == 1
