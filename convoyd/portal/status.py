"""One truthful status per endpoint, in a customer's words: its state, its circuit breaker and
its latest delivery read together, with the tone (colour) of how well it is.

An endpoint that is ACTIVE but whose breaker is OPEN is not healthy: nothing reaches it until
the breaker lets a try through. Times are said as the clock shows them ("19:43 UTC") and only
when they are ahead; a breaker whose cooldown has passed waits for the next delivery to try.
"""

from __future__ import annotations

from dataclasses import dataclass

from convoyd.core.model import BreakerStatus, Delivery, DeliveryStatus, Endpoint, EndpointStatus
from convoyd.portal.templates import Html, clock_time, esc, render

OK, WARN, BAD, IDLE = "ok", "warn", "bad", "idle"
# At or above this failure rate of recent attempts an endpoint is failing, not just flaky
# (the breaker's own default threshold).
FAILING_RATE = 0.5


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """The status word, the sentence after it, and the tone: ok, warn, bad or idle."""

    tone: str
    title: str
    detail: Html


def _in(seconds: float) -> str:
    if seconds < 90:
        return f"in {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"in {round(seconds / 60)} min"
    return f"in {round(seconds / 3600)} h"


def _recent(breaker: BreakerStatus, *, failing: bool) -> str:
    """How the attempts in the breaker's window went, in words."""
    total = breaker.window_attempts
    ok = round(total * (1 - breaker.failure_rate))
    if total == 1:
        return "the one recent attempt " + ("succeeded" if ok else "failed")
    if ok == total:
        return f"all {total} recent attempts succeeded"
    if ok == 0:
        return f"none of the {total} recent attempts succeeded"
    return f"{'only ' if failing else ''}{ok} of {total} recent attempts succeeded"


def _open(breaker: BreakerStatus, now: float) -> EndpointHealth:
    at = breaker.next_probe_at
    if at is not None and at > now:
        detail = render(
            "paused by convoyd until {t} ({w}), next try then",
            t=clock_time(at, now),
            w=_in(at - now),
        )
    else:
        detail = esc("paused by convoyd after failing; it tries again with the next delivery")
    return EndpointHealth(BAD, "Failing", detail)


def _by_last(last: Delivery | None) -> EndpointHealth:
    if last is None:
        return EndpointHealth(IDLE, "Active", esc("nothing sent to it yet"))
    if last.status is DeliveryStatus.SUCCESS:
        return EndpointHealth(OK, "Healthy", esc("the latest delivery succeeded"))
    if last.status is DeliveryStatus.FAILURE:
        return EndpointHealth(BAD, "Failing", esc("the latest delivery failed for good"))
    if last.status is DeliveryStatus.RETRY:
        return EndpointHealth(
            WARN, "Retrying", esc("the latest delivery failed and is tried again")
        )
    return EndpointHealth(IDLE, "Active", esc("convoyd sends events to it"))


def endpoint_health(
    endpoint: Endpoint, breaker: BreakerStatus | None, last: Delivery | None, now: float
) -> EndpointHealth:
    """The one status the portal shows for ``endpoint`` (``last``: its newest delivery)."""
    status = endpoint.status
    if status is EndpointStatus.PAUSED:
        return EndpointHealth(
            WARN,
            "Paused",
            esc("new events are recorded but not sent, and queued ones wait, until it is resumed"),
        )
    if status is EndpointStatus.INACTIVE:
        return EndpointHealth(
            BAD,
            "Disabled",
            esc(
                "convoyd stopped sending after it kept failing; new events are recorded, not"
                " sent. Retry a failed delivery to test it again"
            ),
        )
    if status is EndpointStatus.PENDING:
        return EndpointHealth(
            WARN,
            "Testing",
            esc("one delivery is being sent to see whether it works again; the rest wait"),
        )
    if breaker is None:
        return _by_last(last)
    if breaker.state == "open":
        return _open(breaker, now)
    if breaker.state == "half_open":
        return EndpointHealth(
            WARN, "Recovering", esc("convoyd is sending one delivery to test it; the rest wait")
        )
    if not breaker.window_attempts:
        return _by_last(last)
    # Mostly failing is failing, unless the latest delivery has just succeeded.
    latest_ok = last is not None and last.status is DeliveryStatus.SUCCESS
    if breaker.failure_rate >= FAILING_RATE and not latest_ok:
        return EndpointHealth(BAD, "Failing", esc(_recent(breaker, failing=True)))
    if breaker.failure_rate > 0:
        return EndpointHealth(WARN, "Some failures", esc(_recent(breaker, failing=False)))
    return EndpointHealth(OK, "Healthy", esc(_recent(breaker, failing=False)))


def health_badge(health: EndpointHealth) -> Html:
    return render(
        '<span class="status status-{tone}">{title}</span>', tone=health.tone, title=health.title
    )


def health_line(health: EndpointHealth) -> Html:
    """The badge and its sentence: "Failing — paused by convoyd until 19:43 UTC, …"."""
    return render(
        '<span class="health">{b} <span class="health-detail">— {d}</span></span>',
        b=health_badge(health),
        d=health.detail,
    )
