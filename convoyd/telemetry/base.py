"""The tracing interface the ingest, delivery and store paths call, and the no-op one.

Callers test ``tracing.enabled`` (one attribute) before doing anything for a trace, so with
tracing off the hot paths pay that test and nothing else; the no-op methods exist so a caller
that does not test still runs correctly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from convoyd.core.tracecontext import EventTrace, TraceParent

if TYPE_CHECKING:
    from convoyd.store.base import IngestWrite

# nullcontext holds no state: one instance serves every caller.
_NOTHING: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFacts:
    """What an attempt span says: ids, numbers and kinds only, never a URL, header or body
    (webhook URLs often carry a token in their path)."""

    endpoint_id: str
    delivery_id: str
    event_id: str
    number: int
    start: float
    """Seconds since the epoch."""
    duration: float
    status: int
    """The response's status code; 0 without a response."""
    result: str
    """The attempt's result (core.model.AttemptResult value)."""
    error_kind: str
    """What failed before a response (core.outcome.ErrorKind value); "" for none."""


class IngestSpan:
    """One CreateEvent or BatchCreateEvents call's span; this one records nothing."""

    def event_traces(self, count: int) -> list[EventTrace | None]:
        """The trace each of the call's ``count`` events joins, in order."""
        return [None] * count

    def store_write(self) -> contextlib.AbstractContextManager[None]:
        """A span around the store's ingest write, a child of this one."""
        return _NOTHING

    def end(self, writes: Sequence[IngestWrite], error: BaseException | None = None) -> None:
        """The call ended with ``writes`` stored, or with ``error``."""


_NO_INGEST = IngestSpan()


class Tracing:
    """Tracing switched off: nothing is recorded, stored or sent."""

    enabled = False

    def ingest(self, method: str, count: int, parent: TraceParent | None, state: str) -> IngestSpan:
        """The span of an ingest call of ``count`` events; ``parent`` and ``state`` are the
        caller's trace context (None and "" when it sent none). ``method`` is the RPC's name,
        or "" for events convoyd makes itself."""
        return _NO_INGEST

    def new_span_id(self) -> int:
        """A span id for an attempt, chosen before its request is built."""
        return 0

    def attempt(self, trace: EventTrace, span_id: int, facts: AttemptFacts) -> None:
        """Exports the attempt span ``span_id`` (a child of ``trace.parent``) once it ended."""

    def store_write(self, operation: str, records: int) -> contextlib.AbstractContextManager[None]:
        """A span around one batch write of ``records`` records to the store."""
        return _NOTHING

    async def shutdown(self, within: float) -> None:
        """Exports what is still buffered (within ``within`` seconds) and stops."""


NO_TRACING = Tracing()
