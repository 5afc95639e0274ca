"""A loopback OTLP/gRPC trace collector for tests: the TraceService/Export of opentelemetry-proto
on 127.0.0.1:0, keeping every span it is sent, with waits on conditions (no sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2


def value_of(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attributes(items: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in items}


@dataclass(frozen=True)
class Exported:
    """One span as the collector received it, with its ids as integers."""

    span: trace_pb2.Span
    resource: dict[str, Any]

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> int:
        return int.from_bytes(self.span.trace_id, "big")

    @property
    def span_id(self) -> int:
        return int.from_bytes(self.span.span_id, "big")

    @property
    def parent_id(self) -> int:
        return int.from_bytes(self.span.parent_span_id, "big") if self.span.parent_span_id else 0

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.span.attributes)

    @property
    def links(self) -> list[tuple[int, int]]:
        return [
            (int.from_bytes(link.trace_id, "big"), int.from_bytes(link.span_id, "big"))
            for link in self.span.links
        ]

    @property
    def failed(self) -> bool:
        return self.span.status.code == trace_pb2.Status.STATUS_CODE_ERROR

    @property
    def start_ns(self) -> int:
        return self.span.start_time_unix_nano

    @property
    def end_ns(self) -> int:
        return self.span.end_time_unix_nano


class Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """Keeps every exported span; ``wait`` returns once a condition over them holds."""

    def __init__(self) -> None:
        self.spans: list[Exported] = []
        self.requests = 0
        self._changed = asyncio.Condition()
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        found = [
            Exported(span, attributes(rs.resource.attributes))
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
        async with self._changed:
            self.spans.extend(found)
            self.requests += 1
            self._changed.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    async def start(self) -> Collector:
        server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait(
        self, condition: Callable[[list[Exported]], bool], within: float = 20.0
    ) -> list[Exported]:
        """The spans once ``condition`` holds for them; TimeoutError after ``within`` seconds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: condition(self.spans))
        return list(self.spans)

    def named(self, name: str) -> list[Exported]:
        return [s for s in self.spans if s.name == name]

    async def close(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
            self._server = None
