"""One attempt of one delivery: sign and send it, log it, and judge what it means.

The runner decides what an attempt's result means — the delivery's next state (retry when,
or done), the breaker's verdict, the endpoint state change it calls for — and records it.
Scheduling what comes next is the engine's part.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from convoyd.core.breaker import BreakerState
from convoyd.core.lifecycle import after_attempt
from convoyd.core.model import (
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryStatus,
    EndpointStatus,
    OAuth2Auth,
)
from convoyd.core.outcome import ErrorKind, Outcome, Verdict, classify
from convoyd.core.request import bearer_authorization, build_headers, redact
from convoyd.core.states import Trigger
from convoyd.core.tracecontext import EventTrace, with_trace_headers
from convoyd.delivery.config import USER_AGENT, EngineConfig, SenderLike
from convoyd.delivery.lane import Lane
from convoyd.delivery.oauth2 import TokenCache, TokenFailure
from convoyd.delivery.payloads import PayloadCache
from convoyd.delivery.recorder import Recorder
from convoyd.delivery.sender import AttemptReport, OutboundRequest, unsent
from convoyd.delivery.tls import material_for
from convoyd.store.base import AttemptRecord
from convoyd.telemetry.base import NO_TRACING, AttemptFacts, Tracing

if TYPE_CHECKING:
    from convoyd.metrics import Metrics

log = logging.getLogger(__name__)

RESULT_OF = {
    ErrorKind.TIMEOUT: AttemptResult.TIMEOUT,
    ErrorKind.NETWORK: AttemptResult.NETWORK_ERROR,
    ErrorKind.BLOCKED: AttemptResult.BLOCKED,
}


@dataclass(frozen=True, slots=True)
class Finished:
    """What an attempt left for the engine to do."""

    delivery: Delivery
    """The delivery as it is now (RETRY with its next time, or final)."""
    trigger: Trigger | None
    """An endpoint state change the outcome calls for (410, probe result, failing)."""
    reason: str
    breaker_opened: bool
    """The endpoint's breaker opened: the lane must wake when its cooldown ends."""


class AttemptRunner:
    def __init__(
        self,
        *,
        sender: SenderLike,
        recorder: Recorder,
        payloads: PayloadCache,
        clock: Callable[[], float],
        rng: random.Random,
        config: Callable[[], EngineConfig],
        tokens: TokenCache,
        metrics: Metrics | None = None,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        """``tokens``: the OAuth2 access tokens of the endpoints that use them; ``tracing``:
        where attempt spans go (their traceparent goes in the request)."""
        self._sender = sender
        self._tracing = tracing
        self._tokens = tokens
        self._recorder = recorder
        self._payloads = payloads
        self._clock = clock
        self._rng = rng
        self._config = config
        self._metrics = metrics

    async def run(self, lane: Lane, d: Delivery) -> Finished | None:
        """Sends the delivery once; None when its event no longer exists.

        Whatever goes wrong while preparing or sending (loading the body, signing, building the
        headers, the sender itself) is this attempt's failure: recorded with a short text,
        retried per the retry policy and counted by the breaker like a network error. An
        exception escaping here would leave the delivery pending with no outcome, forever.
        """
        endpoint = lane.endpoint
        start = self._clock()
        headers: list[tuple[str, str]] = []
        trace: EventTrace | None = None
        span_id = 0
        try:
            payload = await self._payloads.get(d.event_id)
        except Exception as exc:
            report = self._unsent(d, "could not load the event body", exc, start)
        else:
            if payload is None:
                lane.breaker.release(self._clock())  # a probe allowed for it was never sent
                return None
            start = self._clock()
            self._recorder.started(d, start)
            step = "could not build the request"
            try:
                headers = build_headers(
                    endpoint=endpoint,
                    keys=lane.signing_keys(start),
                    delivery_id=d.id,
                    timestamp=int(start),
                    body=payload.data,
                    event_headers=payload.headers,
                    user_agent=USER_AGENT,
                )
                spec = endpoint.spec
                if payload.trace is not None and self._tracing.enabled:
                    trace, span_id = payload.trace, self._tracing.new_span_id()
                    if spec.send_trace_context:
                        headers = with_trace_headers(headers, trace, span_id)
                timeout = spec.http_timeout or self._config().default_http_timeout
                request = OutboundRequest(
                    url=spec.url,
                    headers=headers,
                    body=payload.data,
                    timeout=timeout,
                    tls=None if spec.tls is None else material_for(spec.tls),
                )
                step = "could not send the request"
                if isinstance(spec.auth, OAuth2Auth):
                    report, headers = await self._send_with_token(
                        endpoint.id, spec.auth, request, start
                    )
                else:
                    report = await self._sender.send(request)
            except Exception as exc:
                report = self._unsent(d, step, exc, start)
        try:
            finished = self._conclude(lane, d, start, headers, report)
        except Exception:
            # Only a bug gets here; the delivery stays pending in the store (sent again after
            # a restart) and nothing of this attempt may hold the lane's probe or the recorder.
            lane.breaker.release(self._clock())
            self._recorder.abandon(d.id)
            raise
        if trace is not None:
            self._trace(trace, span_id, d, endpoint.id, start, report)
        return finished

    def _trace(
        self,
        trace: EventTrace,
        span_id: int,
        d: Delivery,
        endpoint_id: str,
        start: float,
        report: AttemptReport,
    ) -> None:
        """Exports the attempt's span; a tracing failure is logged, never the attempt's."""
        status = report.status or 0
        if report.error_kind is not ErrorKind.NONE:
            result = RESULT_OF[report.error_kind]
        else:
            result = AttemptResult.SUCCESS if 200 <= status < 300 else AttemptResult.HTTP_ERROR
        facts = AttemptFacts(
            endpoint_id=endpoint_id,
            delivery_id=d.id,
            event_id=d.event_id,
            number=d.attempt_count + 1,
            start=report.started_at or start,  # when it went out, in a sender worker maybe
            duration=report.duration,
            status=status,
            result=result.value,
            error_kind="" if report.error_kind is ErrorKind.NONE else report.error_kind.value,
        )
        try:
            self._tracing.attempt(trace, span_id, facts)
        except Exception:
            log.exception("could not trace the attempt of delivery %s", d.id)

    async def _send_with_token(
        self, endpoint_id: str, auth: OAuth2Auth, request: OutboundRequest, start: float
    ) -> tuple[AttemptReport, list[tuple[str, str]]]:
        """Sends ``request`` with the endpoint's OAuth2 bearer token; a 401 gets one new token
        and one more send, in this attempt (a second 401 is the attempt's answer). Returns the
        report and the headers sent, for the attempt log (which redacts the token). The
        report's duration is the whole attempt's, token requests included: the retry time
        counts from its end."""
        report, headers, token = await self._with_token(endpoint_id, auth, request)
        if token and report.status == 401:
            self._tokens.invalidate(endpoint_id, token)
            report, headers, token = await self._with_token(endpoint_id, auth, request)
        # The whole attempt's time, from its start here (so not the last send's start).
        whole = max(0.0, self._clock() - start)
        return dataclasses.replace(report, duration=whole, started_at=0.0), headers

    async def _with_token(
        self, endpoint_id: str, auth: OAuth2Auth, request: OutboundRequest
    ) -> tuple[AttemptReport, list[tuple[str, str]], str]:
        """One send with the current token (fetched if need be): the report, the headers sent
        and the token ("" when there was none to send: the report says why)."""
        token = await self._tokens.token(endpoint_id, auth, request.timeout)
        if isinstance(token, TokenFailure):
            return token.report(0.0), list(request.headers), ""
        headers = [*request.headers, ("Authorization", bearer_authorization(token))]
        report = await self._sender.send(dataclasses.replace(request, headers=headers))
        return report, headers, token

    def _unsent(self, d: Delivery, step: str, exc: Exception, start: float) -> AttemptReport:
        log.warning(
            "attempt of delivery %s failed inside convoyd: %s (%s)",
            d.id,
            step,
            type(exc).__name__,
            exc_info=exc,
        )
        return unsent(f"{step} ({type(exc).__name__})", max(0.0, self._clock() - start))

    def _conclude(
        self,
        lane: Lane,
        d: Delivery,
        start: float,
        headers: list[tuple[str, str]],
        report: AttemptReport,
    ) -> Finished:
        try:
            attempt, after, outcome = self._assess(lane, d, start, headers, report)
        except Exception as exc:
            # The report itself could not be judged (a bug, or a value no rule expected): judge
            # the attempt as convoyd's own failure instead, so it is still recorded and retried.
            report = self._unsent(d, "could not judge the response", exc, start)
            headers = []
            attempt, after, outcome = self._assess(lane, d, start, headers, report)
        return self._settle(lane, d, start, report, attempt, after, outcome)

    def _assess(
        self,
        lane: Lane,
        d: Delivery,
        start: float,
        headers: list[tuple[str, str]],
        report: AttemptReport,
    ) -> tuple[Attempt, Delivery, Outcome]:
        """The attempt's log entry, the delivery after it, and what the report means."""
        config = self._config()
        endpoint = lane.endpoint
        end = start + report.duration
        outcome = classify(
            report.status,
            report.error_kind,
            report.retry_after,
            now=end,
            retry_after_cap=config.retry_after_cap,
            detail=report.error,
        )
        if report.error_kind is not ErrorKind.NONE:
            result = RESULT_OF[report.error_kind]
        elif outcome.verdict is Verdict.SUCCESS:
            result = AttemptResult.SUCCESS
        else:
            result = AttemptResult.HTTP_ERROR
        attempt = Attempt(
            id=f"at_{d.id[3:]}_{d.attempt_count + 1}",
            delivery_id=d.id,
            number=d.attempt_count + 1,
            result=result,
            started_at=start,
            duration=report.duration,
            request_url=endpoint.spec.url,
            request_headers=redact(headers, endpoint),
            response_status=report.status or 0,
            response_headers=report.headers,
            response_body=report.body,
            response_body_truncated=report.truncated,
            error=report.error,
            remote_address=report.remote_address,
        )
        after = after_attempt(
            d,
            outcome,
            policy=endpoint.spec.retry_policy or config.default_retry_policy,
            status_code=report.status or 0,
            now=end,
            rng=self._rng,
        )
        return attempt, after, outcome

    def _settle(
        self,
        lane: Lane,
        d: Delivery,
        start: float,
        report: AttemptReport,
        attempt: Attempt,
        after: Delivery,
        outcome: Outcome,
    ) -> Finished:
        """Records the attempt, counts it, and feeds it to the breaker."""
        config = self._config()
        endpoint = lane.endpoint
        end = start + report.duration
        result = attempt.result
        self._recorder.record(AttemptRecord(attempt=attempt, delivery=after))
        if log.isEnabledFor(logging.DEBUG):  # skip building the fields on the hot path
            log.debug(
                "attempt %s",
                result.value,
                extra={
                    "delivery_id": d.id,
                    "endpoint_id": endpoint.id,
                    "attempt": attempt.number,
                    "status": report.status or 0,
                    "duration_ms": round(report.duration * 1000, 1),
                    "next": after.status.value,
                },
            )
        if self._metrics is not None:
            self._metrics.attempt(result, report.status, report.duration)
            if report.internal:
                self._metrics.attempt_error()
            if after.status is DeliveryStatus.SUCCESS:
                self._metrics.delivery_succeeded(end - d.created_at)
            elif after.status is DeliveryStatus.FAILURE:
                self._metrics.delivery_failed()
        ok = outcome.verdict is Verdict.SUCCESS
        reason = f"delivery {d.id}: {outcome.reason}"
        if outcome.verdict is Verdict.GONE:
            return Finished(after, Trigger.GONE, reason, breaker_opened=False)
        if endpoint.status is EndpointStatus.PENDING and d.attempt_limit is not None:
            trigger = Trigger.PROBE_SUCCEEDED if ok else Trigger.PROBE_FAILED
            return Finished(after, trigger, reason, breaker_opened=False)
        if endpoint.status is EndpointStatus.ACTIVE:
            return self._judge(lane, after, ok, end, reason, config.inactive_after_trips)
        return Finished(after, None, reason, breaker_opened=False)

    @staticmethod
    def _judge(
        lane: Lane, after: Delivery, ok: bool, now: float, reason: str, inactive_after: int
    ) -> Finished:
        """Feeds one result to the breaker; the endpoint is FAILING after N trips in a row."""
        transition = lane.breaker.record(ok, now)
        if transition is None:
            return Finished(after, None, reason, breaker_opened=False)
        log.info(
            "circuit breaker %s",
            transition.to.value,
            extra={"endpoint_id": lane.endpoint.id, "reason": transition.reason},
        )
        if transition.to is not BreakerState.OPEN:
            return Finished(after, None, reason, breaker_opened=False)
        trips = lane.breaker.consecutive_trips
        if trips >= inactive_after:
            failing = f"circuit breaker opened {trips} times in a row ({transition.reason})"
            return Finished(after, Trigger.FAILING, failing, breaker_opened=True)
        return Finished(after, None, reason, breaker_opened=True)
