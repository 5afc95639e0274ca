"""Counts and times every gRPC call: a grpc.aio server interceptor feeding :class:`Metrics`.

It sits outermost, so it sees the handler the AuthInterceptor chose: a refused call is counted
with the code the refusal set (UNAUTHENTICATED), like any other aborted call.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from convoyd.metrics import Metrics

# Calls to methods no servicer registered: one label value, whatever name the caller sent.
UNKNOWN_METHOD = "unknown"


def short_name(method: str) -> str:
    """'/convoyd.v1.EventService/CreateEvent' → 'CreateEvent'."""
    return method.rpartition("/")[2] or UNKNOWN_METHOD


def _code(context: Any, error: BaseException | None) -> str:
    code = context.code()
    if code is not None:
        return str(code.name)
    if error is None:
        return "OK"
    if isinstance(error, asyncio.CancelledError | GeneratorExit):  # the caller went away
        return "CANCELLED"
    return "UNKNOWN"  # what grpc answers for an exception the servicer did not map


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Feeds ``convoyd_grpc_requests_total`` and ``convoyd_grpc_request_duration_seconds``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        started = time.perf_counter()
        handler = await continuation(handler_call_details)
        if handler is None:  # no such method: grpcio answers it with the "unimplemented" code
            code = grpc.StatusCode.UNIMPLEMENTED.name
            self._metrics.grpc_request(UNKNOWN_METHOD, code, time.perf_counter() - started)
            return None
        return self._wrap(handler, short_name(handler_call_details.method), started)

    def _done(self, method: str, context: Any, error: BaseException | None, started: float) -> None:
        self._metrics.grpc_request(method, _code(context, error), time.perf_counter() - started)

    def _wrap(self, handler: Any, method: str, started: float) -> Any:
        done = self._done
        if handler.unary_unary is not None or handler.stream_unary is not None:
            unary = handler.unary_unary is not None
            behavior = handler.unary_unary if unary else handler.stream_unary
            if not inspect.iscoroutinefunction(behavior):
                return handler  # a synchronous handler: none in convoyd; left uncounted

            async def call(request: Any, context: Any) -> Any:
                try:
                    response = await behavior(request, context)
                except BaseException as exc:
                    done(method, context, exc, started)
                    raise
                done(method, context, None, started)
                return response

            make = (
                grpc.unary_unary_rpc_method_handler
                if unary
                else grpc.stream_unary_rpc_method_handler
            )
            return make(call, handler.request_deserializer, handler.response_serializer)

        unary = handler.unary_stream is not None
        behavior = handler.unary_stream if unary else handler.stream_stream
        make = (
            grpc.unary_stream_rpc_method_handler if unary else grpc.stream_stream_rpc_method_handler
        )
        if inspect.isasyncgenfunction(behavior):

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                try:
                    async for response in behavior(request, context):
                        yield response
                except BaseException as exc:
                    done(method, context, exc, started)
                    raise
                done(method, context, None, started)

            return make(stream, handler.request_deserializer, handler.response_serializer)
        if inspect.iscoroutinefunction(behavior):
            # A streaming handler that writes with context.write() (e.g. Health.Watch).

            async def writer(request: Any, context: Any) -> None:
                try:
                    await behavior(request, context)
                except BaseException as exc:
                    done(method, context, exc, started)
                    raise
                done(method, context, None, started)

            return make(writer, handler.request_deserializer, handler.response_serializer)
        return handler
