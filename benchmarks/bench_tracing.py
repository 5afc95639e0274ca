"""The tracing scenario of benchmarks/bench.py: what tracing costs in throughput.

    .venv/bin/python benchmarks/bench.py --only tracing [--store postgres] [--smoke]

Scenario (a), one endpoint delivered to as fast as the daemon goes (bench.py ``throughput``), on
fresh daemons that differ in one setting only: ``off`` (no telemetry.otlp_endpoint: the code
path every other scenario measures), ``ratio_0.01`` and ``ratio_1`` (spans exported with
OTLP/gRPC to a collector on loopback, 1 % and 100 % of the traces sampled). The events carry
no traceparent, so each starts a trace of its own (its event span, then its attempt's), and
the ratio picks which are recorded; the SDK's batch span processor runs with its defaults.

The collector is a process of its own (``--collector``): it parses every export (upb, C) and
counts the spans, so what it costs is the same in every run and none of it lands in the load
generator's loop. Runs go off, 1 %, 100 %, 100 %, 1 %, off (a palindrome, so a machine whose
speed drifts favours none; --smoke runs each once), and each ratio is the mean of a
configuration's runs over the mean of ``off``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import bench

if TYPE_CHECKING:
    from benchmarks.pgbench_support import BenchPostgres

# Configuration name → telemetry.sampling_ratio (None: tracing off).
CONFIGS: dict[str, float | None] = {"off": None, "ratio_0.01": 0.01, "ratio_1": 1.0}
FIGURES = ("delivered_per_s", "cpu_s_per_1000", "main_cpu_s_per_1000")


class CollectorProcess:
    """This module run with --collector: OTLP/gRPC on one port, its counts over HTTP on another."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [bench.PY, str(Path(__file__).resolve()), "--collector"],
            stdout=subprocess.PIPE,
            cwd=bench.ROOT,
        )
        assert self.proc.stdout is not None
        ports = json.loads(self.proc.stdout.readline())
        self.grpc_port, self.http_port = ports["grpc"], ports["http"]

    def counts(self) -> dict[str, int]:
        return bench.receiver_stats(self.http_port)  # the same GET /stats, JSON answer

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each configuration's mean figures, and its ratios to ``off``'s."""
    out: dict[str, Any] = {}
    means = {name: {f: _mean([r[f] for r in rs]) for f in FIGURES} for name, rs in runs.items()}
    off = means["off"]
    for name, rs in runs.items():
        row: dict[str, Any] = {f: round(v, 3 if "cpu" in f else 0) for f, v in means[name].items()}
        row["runs_delivered_per_s"] = [r["delivered_per_s"] for r in rs]
        row["spans_per_delivery"] = round(
            sum(r["spans"] for r in rs) / max(1, sum(r["deliveries"] for r in rs)), 3
        )
        if name != "off":
            row["throughput_vs_off"] = round(
                means[name]["delivered_per_s"] / off["delivered_per_s"], 3
            )
            row["cpu_per_delivery_vs_off"] = round(
                means[name]["cpu_s_per_1000"] / off["cpu_s_per_1000"], 3
            )
        out[name] = row
    return out


async def run_tracing(
    port: int, size: bench.Size, postgres: BenchPostgres | None = None, *, smoke: bool = False
) -> dict[str, Any]:
    """Scenario (a) with tracing off, at 1 % and at 100 %; see the module docstring.
    ``smoke``: each configuration once, not twice."""
    collector = CollectorProcess()
    endpoint = f"http://127.0.0.1:{collector.grpc_port}"
    order = list(CONFIGS) if smoke else [*CONFIGS, *reversed(CONFIGS)]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    try:
        for name in order:
            ratio = CONFIGS[name]
            env = {}
            if ratio is not None:
                env = {
                    "CONVOYD_TELEMETRY_OTLP_ENDPOINT": endpoint,
                    "CONVOYD_TELEMETRY_SAMPLING_RATIO": str(ratio),
                }
            store: AbstractContextManager[dict[str, str]] = (
                postgres.daemon_env(f"tracing_{name}") if postgres is not None else nullcontext({})
            )
            before = await asyncio.to_thread(collector.counts)
            with store as store_env:
                result = await bench.run_scenario(
                    "a_throughput", port, size, {**store_env, **env}, None
                )
            # The daemon has stopped (and flushed its spans); the receiver counted the run.
            after = await asyncio.to_thread(collector.counts)
            result["spans"] = after["spans"] - before["spans"]
            result["deliveries"] = (await asyncio.to_thread(bench.receiver_stats, port))["count"]
            runs[name].append(result)
            print(f"    tracing {name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    finally:
        collector.stop()
    if runs["off"] and any(r["spans"] for r in runs["off"]):
        raise SystemExit("tracing off exported spans: the comparison would measure nothing")
    return summary(runs)


# -- the collector process ------------------------------------------------------------------


async def _collect() -> None:
    import grpc
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    counts = {"spans": 0, "requests": 0, "count": 0}

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
        async def Export(
            self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
        ) -> trace_service_pb2.ExportTraceServiceResponse:
            counts["requests"] += 1
            counts["spans"] += sum(
                len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans
            )
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(counts)

    app = web.Application()
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = runner.addresses[0][1]
    print(json.dumps({"grpc": grpc_port, "http": http_port}), flush=True)
    try:
        await asyncio.Event().wait()  # until SIGTERM
    finally:
        await runner.cleanup()
        await server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collector", action="store_true", help="run the counting collector")
    args = parser.parse_args()
    if not args.collector:
        parser.error("run through bench.py: bench.py --only tracing")
    asyncio.run(_collect())


if __name__ == "__main__":
    main()
