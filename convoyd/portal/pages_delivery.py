"""A delivery's page (its attempts, newest open, each with what was sent and answered) and an
event's page, as HTML."""

from __future__ import annotations

from collections.abc import Sequence

from convoyd.core.model import (
    RETRYABLE_STATUSES,
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    Event,
)
from convoyd.portal.pages import (
    body_text,
    deliveries_table,
    delivery_href,
    endpoint_href,
    headers_table,
    heading,
    label,
)
from convoyd.portal.templates import (
    Chrome,
    Html,
    badge,
    card,
    copyable,
    details,
    empty_state,
    join,
    link,
    mono,
    page,
    post_button,
    render,
    when,
)

#: The most of a request body a delivery's page shows (the event's page shows it all).
REQUEST_BODY_SHOWN = 64 * 1024


def _kib(size: int) -> str:
    return f"{size / 1024:.0f} KiB" if size >= 10 * 1024 else f"{size / 1024:.1f} KiB"


def request_body(data: bytes | None, event_id: str) -> Html:
    """The body every attempt of a delivery sends (the event's payload), capped."""
    if data is None:
        return render('<p class="muted">The event is no longer kept.</p>')
    if not data:
        return render('<p class="muted">empty</p>')
    if len(data) <= REQUEST_BODY_SHOWN:
        return render("<pre>{b}</pre>", b=body_text(data))
    return render(
        '<p class="muted small">Showing the first {cap} of {size}; the {whole} shows it all.</p>'
        "<pre>{b}</pre>",
        cap=_kib(REQUEST_BODY_SHOWN),
        size=_kib(len(data)),
        whole=link(f"/portal/events/{event_id}", "event's page"),
        b=data[:REQUEST_BODY_SHOWN].decode("utf-8", errors="replace"),
    )


def _attempt(a: Attempt, *, latest: bool, sent: Html, auth_header: str) -> Html:
    summary = render(
        "<summary><strong>Attempt {n}</strong> {result} {status}"
        '<span class="muted small"> · {ms} ms · {at}</span>{tag}</summary>',
        n=a.number,
        result=badge(a.result),
        status=mono(a.response_status) if a.response_status else "",
        ms=f"{a.duration * 1000:.0f}",
        at=when(a.started_at),
        tag=render(' <span class="muted small">(latest)</span>') if latest else "",
    )
    facts = details(
        [
            ("Request URL", mono(a.request_url)),
            ("Remote address", mono(a.remote_address or "—")),
            ("Error", a.error or "—"),
        ]
    )
    truncated = " (truncated by convoyd)" if a.response_body_truncated else ""
    body = (
        render("<pre>{b}</pre>", b=body_text(a.response_body))
        if a.response_body
        else render('<p class="muted">empty</p>')
    )
    return render(
        '<details class="attempt"{open}>{summary}<div class="attempt-body">{facts}'
        "<h3>Request headers</h3>{req}<h3>Request body</h3>{sent}"
        "<h3>Response headers</h3>{resp}<h3>Response body{trunc}</h3>{body}</div></details>",
        open=Html(" open") if latest else Html(""),
        summary=summary,
        facts=facts,
        req=headers_table(a.request_headers, auth_header=auth_header),
        sent=sent,
        resp=headers_table(a.response_headers),
        trunc=truncated,
        body=body,
    )


def _actions(chrome: Chrome, delivery: Delivery) -> Html:
    base = delivery_href(delivery.id)
    if delivery.status in RETRYABLE_STATUSES:
        return post_button(chrome, f"{base}/retry", "Retry", cls="btn btn-primary")
    if delivery.status is DeliveryStatus.RETRY:  # its next try, now (its count is kept)
        return post_button(chrome, f"{base}/retry", "Retry now", cls="btn btn-primary")
    if delivery.status is DeliveryStatus.SUCCESS:
        return post_button(chrome, f"{base}/resend", "Resend", cls="btn")
    return Html("")


def delivery_page(
    chrome: Chrome,
    delivery: Delivery,
    endpoint: Endpoint,
    attempts: Sequence[Attempt],
    *,
    payload: bytes | None,
    message: Html,
    auth_header: str = "",
) -> Html:
    """The delivery and its attempts, newest first and open, older ones folded; the region
    with the id ``delivery-live`` is what the live stream refreshes."""
    head = heading(
        "Delivery", mono(delivery.id), badge(delivery.status), actions=_actions(chrome, delivery)
    )
    info = details(
        [
            ("Delivery ID", copyable(delivery.id, "delivery-id", what="the delivery ID")),
            ("Endpoint", link(endpoint_href(endpoint.id), label(endpoint))),
            ("Event", link(f"/portal/events/{delivery.event_id}", delivery.event_id)),
            ("Event type", delivery.event_type),
            ("Status", render("{b} {r}", b=badge(delivery.status), r=delivery.status_reason)),
            ("Attempts", delivery.attempt_count),
            ("Next attempt", when(delivery.next_attempt_at)),
            ("Created", when(delivery.created_at)),
        ]
    )
    newest_first = list(reversed(attempts))
    if newest_first:
        same = render(
            '<p class="muted small">The same body as the latest attempt: every attempt sends'
            " the event's payload.</p>"
        )
        listing = join(
            _attempt(
                a,
                latest=i == 0,
                sent=request_body(payload, delivery.event_id) if i == 0 else same,
                auth_header=auth_header,
            )
            for i, a in enumerate(newest_first)
        )
    else:
        listing = empty_state(
            "No attempts yet",
            "scheduled or discarded: nothing was sent"
            if delivery.status is DeliveryStatus.DISCARDED
            else "The first attempt is on its way.",
        )
    live = render(
        '<div id="delivery-live" data-stream="{stream}">{head}{summary}{attempts}</div>',
        stream=f"/portal/stream/deliveries/{delivery.id}",
        head=head,
        summary=card("Summary", info),
        attempts=card("Attempts", listing),
    )
    return page("Delivery", live, chrome, active="deliveries", message=message)


def event_page(
    chrome: Chrome, event: Event, deliveries: Sequence[Delivery], names: dict[str, str]
) -> Html:
    head = heading("Event", mono(event.id))
    info = details(
        [
            ("Type", event.event_type),
            ("Created", when(event.created_at)),
            ("Idempotency key", event.idempotency_key or "—"),
        ]
    )
    body = join(
        [
            head,
            card("Summary", info),
            card("Payload", render("<pre>{p}</pre>", p=body_text(event.data))),
            card("Headers", headers_table(tuple(event.headers.items()))),
            card("Deliveries", deliveries_table(deliveries, names)),
        ]
    )
    return page("Event", body, chrome, active="deliveries")
