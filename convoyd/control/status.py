"""Domain errors to gRPC statuses: the one table, plus google.rpc.BadRequest details."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from convoyd import errors

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.ConvoydError], grpc.StatusCode] = {
    errors.ValidationError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.UnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.ConfigError: grpc.StatusCode.FAILED_PRECONDITION,
}


def code_of(exc: errors.ConvoydError) -> grpc.StatusCode:
    return errors.mapped(STATUS_OF, exc, grpc.StatusCode.INTERNAL)


def to_status(exc: errors.ConvoydError) -> grpc.Status:
    code = code_of(exc)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=str(exc))
    if isinstance(exc, errors.ValidationError):
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in exc.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return rpc_status.to_status(status)


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
G = TypeVar("G", bound=Callable[..., AsyncIterator[Any]])


async def _abort(context: Any, exc: Exception, method: Callable[..., Any]) -> None:
    """Ends the call with the status of ``exc``: its own for a ConvoydError, else INTERNAL
    (logged, with nothing of the exception told to the caller)."""
    if isinstance(exc, errors.ConvoydError):
        await context.abort_with_status(to_status(exc))
        return
    log.error("unexpected error in %s", method.__qualname__, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the daemon's log")


def handles_errors(method: F) -> F:
    """Turns ConvoydError into its status; anything else is logged and becomes INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            return await method(self, request, context)
        except Exception as exc:
            await _abort(context, exc, method)

    return wrapper  # type: ignore[return-value]


def handles_stream_errors(method: G) -> G:
    """handles_errors for server-streaming methods."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            async for item in method(self, request, context):
                yield item
        except Exception as exc:
            await _abort(context, exc, method)

    return wrapper  # type: ignore[return-value]
