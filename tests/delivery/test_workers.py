"""The sender worker pool: real child processes, real loopback receivers."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from convoyd.core.outcome import ErrorKind
from convoyd.delivery.sender import OutboundRequest
from convoyd.delivery.workers import _LENGTH, WorkerPoolSender
from tests.receivers import Receiver

Make = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPoolSender]:
    sender = WorkerPoolSender(workers=2, allow_cidrs=["127.0.0.0/8"], user_agent="convoyd-test")
    await sender.start()
    yield sender
    await sender.close()


@pytest.fixture
async def one_worker() -> AsyncIterator[WorkerPoolSender]:
    """One worker (so a test knows which one has the attempt) and a short reply margin."""
    sender = WorkerPoolSender(
        workers=1, allow_cidrs=["127.0.0.0/8"], user_agent="convoyd-test", reply_margin=0.5
    )
    await sender.start()
    yield sender
    await sender.close()


def post(
    url: str, body: bytes = b"{}", timeout: float = 5.0, headers: tuple[tuple[str, str], ...] = ()
) -> OutboundRequest:
    return OutboundRequest(
        url=url,
        headers=[("Content-Type", "application/json"), *headers],
        body=body,
        timeout=timeout,
    )


async def recovered(pool: WorkerPoolSender, url: str) -> None:
    """Waits (bounded) until the pool delivers again."""
    for _ in range(100):
        if (await pool.send(post(url))).status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the pool did not recover")


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


async def test_a_request_the_child_cannot_send_fails_alone_in_its_batch(
    one_worker: WorkerPoolSender, receivers: Make
) -> None:
    receiver = await receivers()
    requests = [post(receiver.url, f'{{"i": {i}}}'.encode()) for i in range(6)]
    requests[2] = post(receiver.url, headers=(("X-P", "a\x7fb"),))
    # Sent in one loop iteration: one frame, one batch in the child.
    reports = await asyncio.wait_for(asyncio.gather(*(one_worker.send(r) for r in requests)), 10)
    bad = reports.pop(2)
    assert bad.error_kind is ErrorKind.NETWORK and bad.internal
    assert "X-P has a control character" in bad.error
    assert [r.status for r in reports] == [200] * 5
    assert len(receiver.requests) == 5
    assert one_worker._workers[0].pending == {}


async def test_a_request_that_cannot_be_pickled_fails_alone(
    one_worker: WorkerPoolSender, receivers: Make
) -> None:
    receiver = await receivers()
    unpicklable = post(receiver.url, body=memoryview(b"{}"))  # type: ignore[arg-type]
    good = [post(receiver.url) for _ in range(3)]
    reports = await asyncio.wait_for(
        asyncio.gather(one_worker.send(unpicklable), *(one_worker.send(r) for r in good)), 10
    )
    assert reports[0].internal and "could not pass the request" in reports[0].error
    assert [r.status for r in reports[1:]] == [200] * 3


async def test_a_hung_worker_gives_up_the_reply_and_is_replaced(
    one_worker: WorkerPoolSender, receivers: Make
) -> None:
    receiver = await receivers()
    worker = one_worker._workers[0]
    assert worker.proc is not None
    stopped = worker.proc
    stopped.send_signal(signal.SIGSTOP)  # the test stops the child on purpose: it hangs
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        report = await asyncio.wait_for(one_worker.send(post(receiver.url, timeout=0.5)), 10)
        # Given up after the timeout plus the margin (0.5 + 0.5 s), not waited for forever.
        assert loop.time() - started >= 1.0
        assert report.internal and "did not answer in time" in report.error
        assert worker.pending == {}
        await asyncio.wait_for(stopped.wait(), 10)  # the hung child was killed
    finally:
        if stopped.returncode is None:
            stopped.send_signal(signal.SIGCONT)
    await recovered(one_worker, receiver.url)
    assert worker.proc is not stopped


async def test_a_frame_the_child_cannot_read_replaces_it_and_fails_its_attempts(
    one_worker: WorkerPoolSender, receivers: Make
) -> None:
    hung = await receivers(hang=asyncio.Event())
    ok = await receivers()
    attempt = asyncio.create_task(one_worker.send(post(hung.url, timeout=30)))
    await hung.wait_for(1)
    worker = one_worker._workers[0]
    assert worker.writer is not None
    old = worker.proc
    worker.writer.write(_LENGTH.pack(5) + b"junk!")  # not a pickle: the child cannot go on
    report = await asyncio.wait_for(attempt, 10)
    assert report.internal and "worker exited" in report.error
    await recovered(one_worker, ok.url)
    assert worker.proc is not old
