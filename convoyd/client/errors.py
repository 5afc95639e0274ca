"""gRPC errors as exception classes, with the server's BadRequest field violations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, cast

import grpc
import grpc.aio

# google.rpc ships no type information; unused-ignore keeps this valid once an override exists.
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]

_STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"


class ConvoydClientError(Exception):
    """A call failed. ``message`` is the server's; ``field_violations`` name bad request fields."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field_violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.code = code
        self.message = message
        self.field_violations: list[tuple[str, str]] = list(field_violations)
        super().__init__(f"{code.name}: {message}")


class InvalidArgumentError(ConvoydClientError):
    """INVALID_ARGUMENT: the request is malformed; see ``field_violations``."""


class NotFoundError(ConvoydClientError):
    """NOT_FOUND."""


class AlreadyExistsError(ConvoydClientError):
    """ALREADY_EXISTS, e.g. an idempotency key reused with another payload."""


class FailedPreconditionError(ConvoydClientError):
    """FAILED_PRECONDITION: the resource's state does not allow the call."""


class UnauthenticatedError(ConvoydClientError):
    """UNAUTHENTICATED: no token, or a wrong one."""


class PermissionDeniedError(ConvoydClientError):
    """PERMISSION_DENIED."""


class ResourceExhaustedError(ConvoydClientError):
    """RESOURCE_EXHAUSTED: a limit is reached."""


class UnavailableError(ConvoydClientError):
    """UNAVAILABLE: the daemon is unreachable or shutting down; retry later."""


ERROR_CLASSES: Final[Mapping[grpc.StatusCode, type[ConvoydClientError]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def error_from_rpc(exc: grpc.aio.AioRpcError) -> ConvoydClientError:
    """The exception for a failed call, with the BadRequest field violations the server sent."""
    code = exc.code()
    message = exc.details() or ""
    violations: list[tuple[str, str]] = []
    # grpc.aio's Metadata iterates as (key, value) pairs; grpc-stubs type it as the sync kind.
    trailing = cast(Iterable[tuple[str, str | bytes]], exc.trailing_metadata() or ())
    for key, value in trailing:
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:  # noqa: S112 - a garbled detail must not hide the error itself
            continue
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
    return ERROR_CLASSES.get(code, ConvoydClientError)(code, message, violations)
