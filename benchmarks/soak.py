"""A bounded soak: the real daemon at a steady rate with healthy, slow and failing endpoints.

    .venv/bin/python benchmarks/soak.py --seconds 60     # what make test runs
    make soak                                            # 10 minutes

Samples RSS and open file descriptors of every convoyd process, the attempts in flight and the
event loop's task count (from /metrics) every few seconds, and fails (exit 1) if any of them
grows from the first half of the run to the second. Prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from google.protobuf import duration_pb2

from benchmarks.bench import Daemon, rss_mb
from convoyd.client import Client, event_request
from convoyd.v1 import endpoint_pb2 as pb


def open_fds(pids: list[int]) -> int:
    return sum(
        len(list(Path(f"/proc/{pid}/fd").iterdir()))
        for pid in pids
        if Path(f"/proc/{pid}").exists()
    )


def scrape(http: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("convoyd_in_flight_attempts", "convoyd_event_loop_tasks"):
                out[sample.name] = sample.value
            if sample.name == "convoyd_queue_depth":
                out["queue_depth"] = out.get("queue_depth", 0) + sample.value
    return out


async def receivers() -> tuple[web.AppRunner, int]:
    async def healthy(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.5)
        return web.Response(status=200)

    async def failing(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text="down")

    app = web.Application()
    app.router.add_post("/healthy", healthy)
    app.router.add_post("/slow", slow)
    app.router.add_post("/failing", failing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def half_max(values: list[float]) -> tuple[float, float]:
    half = len(values) // 2
    return max(values[:half]), max(values[half:])


async def soak(seconds: float, rate: float) -> dict[str, Any]:
    runner, port = await receivers()
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp) / "data")
        daemon.start()
        http = json.loads((daemon.data_dir / "run.json").read_text())["http"]
        samples: list[dict[str, float]] = []
        sent = 0
        try:
            async with Client(daemon.target, token=daemon.token) as client:
                quick = pb.RetryPolicy(
                    linear=pb.LinearRetry(interval=duration_pb2.Duration(seconds=1), max_retries=3)
                )
                for name in ("healthy", "slow", "failing"):
                    await client.create_endpoint(
                        pb.Endpoint(
                            url=f"http://127.0.0.1:{port}/{name}",
                            owner_id="soak",
                            retry_policy=quick,
                        )
                    )
                loop = asyncio.get_running_loop()
                start = loop.time()
                next_sample = start + 2
                while (now := loop.time()) - start < seconds:
                    batch = [
                        event_request(event_type="soak", data={"n": sent + i}, owner_id="soak")
                        for i in range(10)
                    ]
                    await client.batch_create_events(batch)
                    sent += 10
                    if now >= next_sample:
                        metrics = await asyncio.to_thread(scrape, http)
                        samples.append(
                            {
                                "t": round(now - start, 1),
                                "rss_mb": rss_mb(daemon.pids),
                                "fds": open_fds(daemon.pids),
                                **metrics,
                            }
                        )
                        next_sample += 2
                    await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))
        finally:
            daemon.stop()
            await runner.cleanup()
    figures: dict[str, Any] = {
        "seconds": seconds,
        "events": sent,
        "deliveries": sent * 3,
        "samples": len(samples),
    }
    verdicts = []
    for key, slack in (
        ("rss_mb", 25.0),
        ("fds", 16),
        ("convoyd_event_loop_tasks", 64),
        ("convoyd_in_flight_attempts", 32),
    ):
        values = [s[key] for s in samples if key in s]
        if len(values) < 4:
            continue
        first, second = half_max(values)
        figures[f"{key}_first_half_max"] = round(first, 1)
        figures[f"{key}_second_half_max"] = round(second, 1)
        if second > first + slack:
            verdicts.append(f"{key} grew from {first} to {second}")
    figures["max_rss_mb"] = round(max((s["rss_mb"] for s in samples), default=0.0), 1)
    figures["problems"] = verdicts
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument(
        "--rate", type=float, default=100, help="events per second (each goes to 3 endpoints)"
    )
    args = parser.parse_args()
    import uvloop

    figures = uvloop.run(soak(args.seconds, args.rate))
    print(json.dumps(figures, indent=2))
    sys.exit(1 if figures["problems"] else 0)


if __name__ == "__main__":
    started = time.monotonic()
    main()
