"""Tracing with the OpenTelemetry SDK: spans of ingest, events, attempts and store writes,
exported with OTLP. Imported only when telemetry.otlp_endpoint is set (convoyd.telemetry.setup).

Spans never take the current context from contextvars: each names its parent explicitly, so
nothing of one request's trace leaks into another's. Attempt spans are made after the attempt
ended (it may have run in a sender worker process) with its real start and end times and the
span id its ``traceparent`` header already carried, which the id generator hands back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from convoyd import __version__
from convoyd.core.tracecontext import SAMPLED, EventTrace, TraceParent
from convoyd.telemetry.base import AttemptFacts, IngestSpan, Tracing

if TYPE_CHECKING:
    from convoyd.settings import TelemetrySettings
    from convoyd.store.base import IngestWrite

SCOPE = "convoyd"
SERVICE = "convoyd.v1.EventService"
DB_SYSTEM = {"sqlite": "sqlite", "postgres": "postgresql"}
# The ids the next span must take (an attempt span whose id its request already carried,
# an event span whose ids its event already stored); unset: random ones.
_CHOSEN: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "convoyd_chosen_span_ids", default=None
)


class _ChosenIds(RandomIdGenerator):
    """Random ids, but the ones ``_CHOSEN`` holds while it holds any."""

    def generate_span_id(self) -> int:
        chosen = _CHOSEN.get()
        return chosen[1] if chosen else super().generate_span_id()

    def generate_trace_id(self) -> int:
        chosen = _CHOSEN.get()
        return chosen[0] if chosen and chosen[0] else super().generate_trace_id()


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _remote(parent: TraceParent, state: str = "") -> Context:
    """A context whose current span is ``parent``, received from elsewhere."""
    span = trace.NonRecordingSpan(
        SpanContext(
            trace_id=parent.trace_id,
            span_id=parent.span_id,
            is_remote=True,
            trace_flags=TraceFlags(parent.flags & 0xFF),
            trace_state=TraceState.from_header([state]) if state else None,
        )
    )
    return trace.set_span_in_context(span, Context())


def _link(ingest: TraceParent | None) -> list[Link]:
    if ingest is None:
        return []
    context = SpanContext(
        trace_id=ingest.trace_id,
        span_id=ingest.span_id,
        is_remote=True,
        trace_flags=TraceFlags(ingest.flags & 0xFF),
    )
    return [Link(context)]


def _context_of(span: trace.Span) -> TraceParent:
    """``span``'s ids and sampled flag, as a traceparent would carry them."""
    context = span.get_span_context()
    flags = SAMPLED if context.trace_flags.sampled else 0
    return TraceParent(trace_id=context.trace_id, span_id=context.span_id, flags=flags)


def _fail(span: trace.Span, kind: str) -> None:
    """Marks ``span`` failed by the kind of error alone (messages may quote caller data)."""
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))


def _exporter(settings: TelemetrySettings) -> SpanExporter:
    url = settings.otlp_endpoint
    parts = urllib.parse.urlsplit(url)
    if settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=url, insecure=parts.scheme == "http")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    if parts.path in ("", "/"):
        url = urllib.parse.urlunsplit(parts._replace(path="/v1/traces"))
    return HttpSpanExporter(endpoint=url)


def _sampler(settings: TelemetrySettings) -> Sampler | None:
    """telemetry.sampling_ratio for new traces (a caller's trace keeps its decision); unset:
    OTEL_TRACES_SAMPLER when set (None lets the SDK read it), else every trace."""
    if settings.sampling_ratio is None and os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    ratio = 1.0 if settings.sampling_ratio is None else settings.sampling_ratio
    return ParentBased(TraceIdRatioBased(ratio))


def _resource() -> Resource:
    """service.name convoyd and its version, under what OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES say (those win)."""
    ours = Resource.create({"service.name": "convoyd", "service.version": __version__})
    return ours.merge(OTELResourceDetector().detect())


class _Ingest(IngestSpan):
    """One ingest call's span, and the traces its events join."""

    def __init__(
        self,
        owner: OtelTracing,
        span: trace.Span,
        incoming: TraceParent | None,
        state: str,
        count: int,
    ) -> None:
        self._owner = owner
        self._span = span
        self._context = trace.set_span_in_context(span, Context())
        self._incoming = incoming
        self._state = state
        self._ingest = _context_of(span)
        self._count = count

    def event_traces(self, count: int) -> list[EventTrace | None]:
        ingest = self._ingest
        if self._incoming is not None:
            # The caller's trace: attempts are its span's children, sampled as ingest was.
            parent = TraceParent(
                trace_id=self._incoming.trace_id,
                span_id=self._incoming.span_id,
                flags=(self._incoming.flags & ~SAMPLED) | (ingest.flags & SAMPLED),
            )
            shared = EventTrace(parent=parent, tracestate=self._state, ingest=ingest)
            return [shared] * count
        # No caller trace: each event starts its own, whose root is its event span (made in
        # end(), with these ids, for the events actually stored).
        return [self._owner.fresh_trace(ingest) for _ in range(count)]

    def store_write(self) -> contextlib.AbstractContextManager[None]:
        return self._owner.span_around("ingest", self._count, self._context)

    def end(self, writes: Sequence[IngestWrite], error: BaseException | None = None) -> None:
        span = self._span
        if error is not None:
            _fail(span, type(error).__name__)
        else:
            span.set_attribute("convoyd.delivery_count", sum(len(w.deliveries) for w in writes))
            span.set_attribute("convoyd.replayed_count", sum(1 for w in writes if w.replay))
            if self._incoming is None:
                for write in writes:
                    trace_of = write.event.trace
                    if not write.replay and trace_of is not None:
                        self._owner.event_span(write, trace_of)
        span.end()


class OtelTracing(Tracing):
    """The SDK's tracer provider with a batch processor and the OTLP exporter."""

    enabled = True

    def __init__(
        self,
        settings: TelemetrySettings,
        *,
        store: str,
        exporter: SpanExporter | None = None,
    ) -> None:
        """``exporter``: where spans go (default: OTLP to telemetry.otlp_endpoint)."""
        self._ids = _ChosenIds()
        self._provider = TracerProvider(
            sampler=_sampler(settings),
            resource=_resource(),
            id_generator=self._ids,
            shutdown_on_exit=False,  # shutdown() flushes, within the daemon's stop
        )
        self._provider.add_span_processor(BatchSpanProcessor(exporter or _exporter(settings)))
        self._tracer = self._provider.get_tracer(SCOPE, __version__)
        self._sampler = self._provider.sampler
        self._db = DB_SYSTEM.get(store, store)

    # -- ingest ---------------------------------------------------------------------------

    def ingest(self, method: str, count: int, parent: TraceParent | None, state: str) -> IngestSpan:
        name = f"{SERVICE}/{method}" if method else "convoyd ingest"
        attributes: dict[str, str | int] = {"convoyd.event_count": count}
        if method:
            attributes |= {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": method}
        span = self._tracer.start_span(
            name,
            context=_remote(parent, state) if parent is not None else Context(),
            kind=SpanKind.SERVER if method else SpanKind.INTERNAL,
            attributes=attributes,
        )
        return _Ingest(self, span, parent, state, count)

    def fresh_trace(self, ingest: TraceParent) -> EventTrace:
        """A new trace for one event: its root's ids, sampled as the sampler says for them."""
        trace_id = self._ids.generate_trace_id()
        span_id = self._ids.generate_span_id()
        decision = self._sampler.should_sample(
            Context(), trace_id, "convoyd event", SpanKind.INTERNAL, None, _link(ingest)
        ).decision
        flags = SAMPLED if decision is Decision.RECORD_AND_SAMPLE else 0
        root = TraceParent(trace_id=trace_id, span_id=span_id, flags=flags)
        return EventTrace(parent=root, ingest=ingest)

    def event_span(self, write: IngestWrite, event_trace: EventTrace) -> None:
        """The root span of an event's own trace, lasting as long as its ingest call."""
        if not event_trace.parent.sampled:
            return
        event = write.event
        root = event_trace.parent
        token = _CHOSEN.set((root.trace_id, root.span_id))
        try:
            span = self._tracer.start_span(
                "convoyd event",
                context=Context(),
                kind=SpanKind.PRODUCER,
                attributes={
                    "convoyd.event.id": event.id,
                    "convoyd.event.type": event.event_type,
                    "convoyd.delivery_count": len(write.deliveries),
                },
                links=_link(event_trace.ingest),
                start_time=_ns(event.created_at),
            )
        finally:
            _CHOSEN.reset(token)
        span.end()

    # -- attempts -------------------------------------------------------------------------

    def new_span_id(self) -> int:
        return self._ids.generate_span_id()

    def attempt(self, trace_of: EventTrace, span_id: int, facts: AttemptFacts) -> None:
        parent = trace_of.parent
        if not parent.sampled:
            return  # its traceparent said so: nobody records this trace
        attributes: dict[str, str | int | float] = {
            "convoyd.endpoint.id": facts.endpoint_id,
            "convoyd.delivery.id": facts.delivery_id,
            "convoyd.event.id": facts.event_id,
            "convoyd.attempt.number": facts.number,
            "convoyd.attempt.result": facts.result,
            "convoyd.attempt.duration_s": facts.duration,
            "http.request.method": "POST",
        }
        if facts.status:
            attributes["http.response.status_code"] = facts.status
        token = _CHOSEN.set((0, span_id))
        try:
            span = self._tracer.start_span(
                "convoyd attempt",
                context=_remote(parent, trace_of.tracestate),
                kind=SpanKind.CLIENT,
                attributes=attributes,
                links=_link(trace_of.ingest),
                start_time=_ns(facts.start),
            )
        finally:
            _CHOSEN.reset(token)
        if facts.result != "success":
            _fail(span, facts.error_kind or str(facts.status or facts.result))
        span.end(end_time=_ns(facts.start + max(0.0, facts.duration)))

    # -- store ----------------------------------------------------------------------------

    def store_write(self, operation: str, records: int) -> contextlib.AbstractContextManager[None]:
        return self.span_around(operation, records, Context())

    @contextlib.contextmanager
    def span_around(self, operation: str, records: int, parent: Context) -> Iterator[None]:
        """A span of one store batch write of ``records`` records."""
        span = self._tracer.start_span(
            f"convoyd store {operation}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": self._db,
                "db.operation.name": operation,
                "db.operation.batch.size": records,
            },
        )
        try:
            yield
        except BaseException as exc:
            _fail(span, type(exc).__name__)
            raise
        finally:
            span.end()

    # -- lifecycle ------------------------------------------------------------------------

    async def shutdown(self, within: float) -> None:
        """Flushes and stops the provider in a thread of its own, waiting at most ``within``
        (plus a second) for it: a collector that does not answer must not hold the stop."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        def work() -> None:
            try:
                self._provider.force_flush(int(within * 1000))
                self._provider.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(finished)

        threading.Thread(target=work, name="convoyd-otel-shutdown", daemon=True).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), within + 1)
