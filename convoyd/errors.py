"""Every error convoyd raises on purpose: one root class, mapped to gRPC codes only in control/."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class ConvoydError(Exception):
    """Root of convoyd's own errors. The message is safe to show to the caller."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: its path (e.g. ``retry_policy.linear.interval``) and what is wrong."""

    field: str
    description: str


class ValidationError(ConvoydError):
    """The request is malformed; every bad field is named."""

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def single(cls, field: str, description: str) -> ValidationError:
        return cls([FieldViolation(field, description)])


class NotFoundError(ConvoydError):
    """The named resource does not exist (or is outside the caller's scope)."""


class AlreadyExistsError(ConvoydError):
    """A resource with the same identity exists with different content."""


class FailedPreconditionError(ConvoydError):
    """The request is valid but the resource's state does not allow it."""


class UnauthenticatedError(ConvoydError):
    """No valid credentials."""


class PermissionDeniedError(ConvoydError):
    """Valid credentials without the right to do this."""


class ResourceExhaustedError(ConvoydError):
    """A limit is reached (disk full, too many secrets, ...)."""


class UnavailableError(ConvoydError):
    """convoyd cannot serve the request now (shutting down, store unavailable); retry later."""


class ConfigError(ConvoydError):
    """The configuration is invalid; the message names the key and the source."""


class StartupError(ConvoydError):
    """convoyd cannot start; the message says what and where, in one line."""


class BackupError(ConvoydError):
    """The backup was not made; the message says why."""


def mapped(table: Mapping[type[ConvoydError], T], exc: ConvoydError, default: T) -> T:
    """What an edge's table says for ``exc``: its own class, else its nearest base, else
    ``default``. Each edge (gRPC, the portal) keeps one such table."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return default
