"""A stand-in for the Sender in unit tests: records requests, answers from a script.

Each ``send`` records the request and answers with the next scripted item; when the script runs
out, a ``responder`` callable (if given) answers, else the default. An item is an
:class:`AttemptReport`, an HTTP status, or an awaitable-returning callable — the last lets a test
hold an attempt in flight (``await event.wait()``) to observe concurrency.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence

from convoyd.core.outcome import ErrorKind
from convoyd.delivery.sender import AttemptReport, OutboundRequest, no_answer

Answer = AttemptReport | int
Responder = Callable[[OutboundRequest], Answer | Awaitable[Answer]]
ScriptItem = Answer | Responder


def answer(
    status: int,
    *,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    retry_after: str | None = None,
    remote_address: str = "127.0.0.1",
    duration: float = 0.0,
) -> AttemptReport:
    """An HTTP answer; ``retry_after`` also appears among the headers."""
    all_headers = tuple(headers)
    if retry_after is not None:
        all_headers += (("Retry-After", retry_after),)
    return AttemptReport(
        status=status,
        headers=all_headers,
        body=body,
        truncated=False,
        error_kind=ErrorKind.NONE,
        error="",
        remote_address=remote_address,
        duration=duration,
        retry_after=retry_after,
    )


def failure(kind: ErrorKind, error: str = "", *, duration: float = 0.0) -> AttemptReport:
    """No HTTP answer: a timeout, a network error or a blocked address."""
    if kind is ErrorKind.NONE:
        raise ValueError("a failure needs an error kind other than NONE")
    return no_answer(kind, error or kind.value, duration)


class FakeSender:
    """Records every request and answers from a script (see the module docstring)."""

    def __init__(
        self,
        script: Iterable[ScriptItem] = (),
        *,
        responder: Responder | None = None,
        default: Answer = 200,
    ) -> None:
        self.requests: list[OutboundRequest] = []
        self.allow_cidrs: tuple[str, ...] = ()
        self.started = False
        self.closed = False
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[ScriptItem] = deque(script)
        self._responder = responder
        self._default = default

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        return len(self._script)

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    def set_allow_cidrs(self, cidrs: Sequence[str]) -> None:
        self.allow_cidrs = tuple(cidrs)

    async def send(self, request: OutboundRequest) -> AttemptReport:
        self.requests.append(request)
        if self._script:
            item: ScriptItem = self._script.popleft()
        elif self._responder is not None:
            item = self._responder
        else:
            item = self._default
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if callable(item):
                result = item(request)
                if inspect.isawaitable(result):
                    result = await result
                item = result
        finally:
            self.in_flight -= 1
        return item if isinstance(item, AttemptReport) else answer(item)
