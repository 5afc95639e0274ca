"""The retention scenario of benchmarks/bench.py: accept → delivered latency, pruning off and on.

Issue 18's target: pruning under load raises the accept → delivered p99 by at most 20 %. Each
configuration runs on a fresh daemon (and, on PostgreSQL, a fresh database) that differs from
the other in one setting only: ``off`` keeps everything (retention.period 0), ``on`` prunes
what is older than a short period. Both run retention every second (interval 1), so the store
size gauge is as fresh in one as in the other.

A steady load (bench.py's ``offer``, the latency scenario's rate, ~1 KiB events, one endpoint
on the bench's receiver) runs first for the warm-up: the period plus a few seconds, so that in
``on`` the first events have aged past the period and every run of the window prunes a second's
worth. The receiver's figures are then reset and the window is measured; a run of ``on`` in
which no event was pruned inside the window is an error, as the comparison would measure nothing.

Configurations alternate in pairs, ABBA (off, on, then on, off, …), so that a machine whose speed
drifts (this one is a shared VM) favours neither; the p99 ratio is the median of the pairs'
on ÷ off ratios, each pair's two runs being neighbours in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import bench
from benchmarks.bench import Daemon, cpu_seconds, offer, receiver_stats, wait_count
from convoyd.client import Client
from convoyd.v1 import endpoint_pb2 as pb

if TYPE_CHECKING:
    from benchmarks.pgbench_support import BenchPostgres

P99_RATIO_TARGET = 1.20  # p99 with pruning over p99 without
INTERVAL = 1  # seconds between retention runs, in both configurations
CONFIGS = ("off", "on")
PRUNED_EVENTS = 'convoyd_retention_pruned_total{kind="events"}'
STORE_SIZE = "convoyd_store_size_bytes"
LAST_RUN_DURATION = "convoyd_retention_last_run_duration_seconds"


@dataclass(frozen=True)
class RetentionSize:
    rate: float  # events offered per second
    period: float  # retention.period of ``on``, seconds
    settle: float  # seconds of warm-up past the period, before the window
    window: float  # seconds measured
    pairs: int  # (off, on) pairs

    @property
    def warm_up(self) -> float:
        return self.period + self.settle


FULL = RetentionSize(rate=bench.FULL.latency_rate, period=10, settle=5, window=30, pairs=3)
SMOKE = RetentionSize(rate=bench.SMOKE.latency_rate, period=3, settle=1, window=2, pairs=1)


def order(i: int) -> dict[str, Any]:
    """An ``order.created`` body of about 1 KiB as JSON, the size of a typical webhook: the
    rows pruning removes are as large as a real deployment's, not bench.py's 250 bytes."""
    return {
        "i": i,
        "t": time.time(),
        "type": "order.created",
        "order": {
            "id": f"ord_{i:012d}",
            "status": "created",
            "currency": "EUR",
            "total_cents": 1000 + i % 90_000,
            "customer": {
                "id": f"cus_{i % 10_000:08d}",
                "email": f"customer{i % 10_000}@shop.example",
                "name": "Alexandra Example-Customer",
                "address": {
                    "line1": "1234 Long Street Name",
                    "line2": "Building 5, Floor 6",
                    "city": "Somewhere",
                    "postal_code": "12345",
                    "country": "DE",
                },
            },
            "lines": [
                {
                    "sku": f"SKU-{(i + k) % 5000:06d}",
                    "title": "A product with a descriptive title",
                    "quantity": 1 + k,
                    "unit_cents": 999 + 100 * k,
                }
                for k in range(4)
            ],
            "metadata": {"channel": "web", "campaign": "spring-sale", "note": "x" * 117},
        },
    }


PAYLOAD_BYTES = len(json.dumps(order(0)))


def scrape(daemon: Daemon) -> dict[str, float]:
    """The figures of /metrics this scenario reads, each summed over its series."""
    run = json.loads((daemon.data_dir / "run.json").read_text())
    url = f"http://{run.get('metrics') or run['http']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    out = {}
    for name in (PRUNED_EVENTS, STORE_SIZE, LAST_RUN_DURATION):
        # A bare name matches each of its labelled series too (the test suite's reading).
        labels = "" if "{" in name else r"(?:\{[^}]*\})?"
        found = re.findall(rf"^{re.escape(name)}{labels} (\S+)$", text, re.MULTILINE)
        out[name] = sum(float(v) for v in found)
    return out


@contextlib.contextmanager
def _own_files(_: str) -> Iterator[dict[str, str]]:
    """SQLite's store settings: none, the daemon's fresh data dir holds its database."""
    yield {}


async def _window(
    client: Client, receiver: int, daemon: Daemon, size: RetentionSize
) -> dict[str, Any]:
    """The warm-up, then the measured window, on one daemon."""
    ep = await client.create_endpoint(pb.Endpoint(url=f"http://127.0.0.1:{receiver}/retention"))
    targets = {"endpoint_ids": [ep.id]}
    await asyncio.to_thread(receiver_stats, receiver, True)
    warm = await offer(client, size.rate, size.warm_up, targets, data=order)
    # Every warm-up event in before the reset: the window's count is then its own events, and
    # its latencies are of those only. The pause is at most one poll (0.2 s) of no load.
    await wait_count(receiver, warm, daemon, 30)
    before = await asyncio.to_thread(scrape, daemon)
    await asyncio.to_thread(receiver_stats, receiver, True)
    store_cpu = daemon.store_cpu or (lambda: 0.0)
    cpu0, server0 = cpu_seconds(daemon.pids), store_cpu()
    sent = await offer(client, size.rate, size.window, targets, data=order)
    stats = await wait_count(receiver, sent, daemon, 30)
    cpu1, server1 = cpu_seconds(daemon.pids), store_cpu()
    after = await asyncio.to_thread(scrape, daemon)
    per_1000 = 1000 / max(stats["count"], 1)
    result: dict[str, Any] = {
        "sent": sent,
        "delivered": stats["count"],
        **{k: round(stats[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
        "events_pruned_in_window": round(after[PRUNED_EVENTS] - before[PRUNED_EVENTS]),
        "events_pruned": round(after[PRUNED_EVENTS]),
        "store_bytes_start": round(before[STORE_SIZE]),
        "store_bytes_end": round(after[STORE_SIZE]),
        "last_run_s": round(after[LAST_RUN_DURATION], 4),
        "cpu_s_per_1000": round((cpu1 - cpu0) * per_1000, 3),
    }
    if daemon.store_cpu is not None:
        result["postgres_cpu_s_per_1000"] = round((server1 - server0) * per_1000, 3)
    return result


async def _run(
    config: str,
    receiver: int,
    size: RetentionSize,
    store_env: dict[str, str],
    store_cpu: Callable[[], float] | None,
) -> dict[str, Any]:
    period = size.period if config == "on" else 0
    env = {
        **store_env,
        "CONVOYD_RETENTION_PERIOD": str(period),
        "CONVOYD_RETENTION_INTERVAL": str(INTERVAL),
    }
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp) / "data", extra_env=env, store_cpu=store_cpu)
        daemon.start()
        try:
            async with Client(daemon.target, token=daemon.token, timeout=120) as client:
                result = await _window(client, receiver, daemon, size)
        finally:
            daemon.stop()
    if config == "on" and result["events_pruned_in_window"] <= 0:
        raise RuntimeError(
            f"retention pruned no event inside the window (period {period} s): {result}"
        )
    return result


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's runs: the medians of its figures, and each run's p99."""
    keys = ("p50_ms", "p95_ms", "p99_ms", "cpu_s_per_1000", "postgres_cpu_s_per_1000")
    out: dict[str, Any] = {
        key: round(statistics.median(run[key] for run in runs), 3 if "cpu" in key else 2)
        for key in keys
        if key in runs[0]
    }
    last = runs[-1]
    return {
        **out,
        "p99_ms_runs": [run["p99_ms"] for run in runs],
        "delivered_of_sent": round(
            sum(run["delivered"] for run in runs) / max(sum(run["sent"] for run in runs), 1), 4
        ),
        "events_pruned_in_window": [run["events_pruned_in_window"] for run in runs],
        # The last run's store, at the start and the end of its window: bounded with pruning,
        # growing by the window's events without.
        "store_bytes_start": last["store_bytes_start"],
        "store_bytes_end": last["store_bytes_end"],
        "last_run_s": last["last_run_s"],
    }


async def run_retention(
    receiver: int, postgres: BenchPostgres | None, *, smoke: bool
) -> dict[str, Any]:
    """The scenario on SQLite (``postgres`` None) or on a fresh database of ``postgres`` for
    each daemon; returns each configuration's medians and the p99 ratio against its target."""
    size = SMOKE if smoke else FULL
    databases: Callable[[str], AbstractContextManager[dict[str, str]]] = _own_files
    store_cpu = None
    if postgres is not None:
        databases = postgres.daemon_env
        store_cpu = postgres.cpu_seconds if postgres.postmaster is not None else None
    runs: dict[str, list[dict[str, Any]]] = {config: [] for config in CONFIGS}
    ratios = []
    for pair in range(size.pairs):
        order_of_pair = CONFIGS if pair % 2 == 0 else CONFIGS[::-1]
        for config in order_of_pair:
            with databases(f"retention_{config}_{pair + 1}") as store_env:
                result = await _run(config, receiver, size, store_env, store_cpu)
            runs[config].append(result)
            print(
                f"  retention [pair {pair + 1}, {config}]: {json.dumps(result)}",
                file=sys.stderr,
                flush=True,
            )
        ratios.append(runs["on"][-1]["p99_ms"] / max(runs["off"][-1]["p99_ms"], 1e-9))
    ratio = round(statistics.median(ratios), 3)
    return {
        "setup": {
            "offered_per_s": size.rate,
            "payload_bytes": PAYLOAD_BYTES,
            "period_s": size.period,
            "interval_s": INTERVAL,
            "warm_up_s": size.warm_up,
            "window_s": size.window,
            "pairs": size.pairs,
        },
        **{config: _medians(runs[config]) for config in CONFIGS},
        "p99_ratio": {
            "value": ratio,
            "pairs": [round(r, 3) for r in ratios],
            "target_max": P99_RATIO_TARGET,
            # A smoke window holds a hundred deliveries: its p99 is noise, not judged.
            "met": ratio <= P99_RATIO_TARGET if not smoke else None,
        },
    }
