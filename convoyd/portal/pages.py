"""The portal's read pages as HTML: endpoints, one endpoint, deliveries, one delivery, an event."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from convoyd.core.model import (
    RETRYABLE_STATUSES,
    Attempt,
    BreakerStatus,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    Event,
    FifoQueue,
    Ordering,
    SignatureScheme,
)
from convoyd.core.request import redact_pairs
from convoyd.core.validation import MAX_JSON_DEPTH, nested_deeper_than
from convoyd.portal.credentials import auth_summary, ca_summary, certificate_summary
from convoyd.portal.templates import (
    EMPTY,
    Chrome,
    Html,
    badge,
    card,
    details,
    empty_state,
    esc,
    join,
    link,
    mono,
    page,
    post_button,
    render,
    table,
    url,
    when,
)

OVERLAPS: tuple[tuple[str, str], ...] = (
    ("0", "None: the old secret stops now"),
    ("3600", "1 hour"),
    ("86400", "24 hours"),
    ("604800", "7 days"),
)
CONVOY_SIMPLE_CAVEAT = (
    "This scheme carries one signature, so convoyd keeps signing with the oldest live secret "
    "until it expires, then switches: add the new secret to your receiver before then."
)


@dataclass(frozen=True, slots=True)
class EndpointRow:
    endpoint: Endpoint
    breaker: BreakerStatus | None
    last: Delivery | None


def label(endpoint: Endpoint) -> str:
    return endpoint.spec.name or endpoint.spec.url


def endpoint_href(endpoint_id: str) -> str:
    return f"/portal/endpoints/{endpoint_id}"


def delivery_href(delivery_id: str) -> str:
    return f"/portal/deliveries/{delivery_id}"


def breaker_text(status: BreakerStatus | None) -> Html:
    if status is None:
        return render('<span class="muted">no data</span>')
    if status.window_attempts:
        rate = f"{(1 - status.failure_rate) * 100:.0f}% ok of {status.window_attempts} recent"
    else:
        rate = "no recent attempts"
    return render(
        '{badge} <span class="muted small">{rate}</span>',
        badge=badge(status.state.replace("_", "-")),
        rate=rate,
    )


def heading(title: object, *extra: object, actions: Html = EMPTY) -> Html:
    return render(
        '<div class="page-head"><div><h1>{title} {extra}</h1></div>'
        '<div class="actions">{actions}</div></div>',
        title=title,
        extra=join(extra, " "),
        actions=actions,
    )


def endpoints_page(
    chrome: Chrome,
    rows: Sequence[EndpointRow],
    *,
    next_token: str,
    can_create: bool,
    show_owner: bool,
    message: Html,
) -> Html:
    create = link("/portal/endpoints/new", "New endpoint", "btn btn-primary") if can_create else ""
    if not rows:
        hint = (
            "Create an endpoint to start receiving webhooks."
            if can_create
            else "When an endpoint is set up for you, it appears here with its deliveries."
        )
        body = empty_state("No endpoints yet", hint, esc(create))
    else:
        headers = ["Endpoint", *(["Owner"] if show_owner else []), "Status", "Circuit"]
        headers.append("Last delivery")
        body = table(
            headers,
            (
                [
                    render(
                        '<a class="strong" href="{href}">{name}</a>'
                        '<div class="mono small muted truncate">{url}</div>',
                        href=endpoint_href(r.endpoint.id),
                        name=label(r.endpoint),
                        url=r.endpoint.spec.url,
                    ),
                    *([r.endpoint.spec.owner_id] if show_owner else []),
                    badge(r.endpoint.status),
                    breaker_text(r.breaker),
                    when(r.last.last_attempt_at or r.last.created_at) if r.last else "never",
                ]
                for r in rows
            ),
        )
        if next_token:
            more = link(url("/portal/", page=next_token), "Next page →", "btn btn-quiet")
            body = render('{b}<div class="pager">{m}</div>', b=body, m=more)
    head = heading("Endpoints", actions=esc(create))
    return page("Endpoints", join([head, body]), chrome, active="endpoints", message=message)


def deliveries_table(items: Sequence[Delivery], names: dict[str, str]) -> Html:
    return table(
        ["Delivery", "Event type", "Endpoint", "Status", "Attempts", "HTTP", "Created"],
        (
            [
                link(delivery_href(d.id), d.id, "mono"),
                d.event_type,
                link(endpoint_href(d.endpoint_id), names.get(d.endpoint_id, d.endpoint_id)),
                badge(d.status),
                d.attempt_count,
                d.last_http_status or "—",
                when(d.created_at),
            ]
            for d in items
        ),
    )


def _secrets_card(chrome: Chrome, endpoint: Endpoint, now: float) -> Html:
    rows = [
        [mono(s.id), when(s.created_at), when(s.expires_at, "never")]
        for s in endpoint.live_secrets(now)
    ]
    body = table(["Secret", "Created", "Expires"], rows)
    if chrome.can_manage:
        base = endpoint_href(endpoint.id)
        options = join(
            render(
                '<option value="{v}"{sel}>{t}</option>',
                v=v,
                t=t,
                sel=Html(" selected") if v == "86400" else Html(""),
            )
            for v, t in OVERLAPS
        )
        caveat = Html("")
        if endpoint.spec.signature.scheme is SignatureScheme.CONVOY_SIMPLE:
            caveat = render('<p class="callout">{t}</p>', t=CONVOY_SIMPLE_CAVEAT)
        body = render(
            '{table}{caveat}<form class="row-form" method="post" action="{rotate}">{csrf}'
            '<label for="overlap">Old secret keeps signing for</label>'
            '<select id="overlap" name="overlap">{options}</select>'
            '<button type="submit" class="btn">Rotate secret</button></form>'
            "{reveal}",
            table=body,
            caveat=caveat,
            rotate=f"{base}/rotate-secret",
            csrf=render('<input type="hidden" name="csrf" value="{v}">', v=chrome.csrf),
            options=options,
            reveal=post_button(chrome, f"{base}/secret", "Reveal secret", cls="btn btn-quiet"),
        )
    return card("Signing secrets", body)


def _endpoint_actions(chrome: Chrome, endpoint: Endpoint, base: str) -> list[Html]:
    if not chrome.can_manage:
        return []
    toggle = "resume" if endpoint.status is EndpointStatus.PAUSED else "pause"
    return [
        link(f"{base}/edit", "Edit", "btn"),
        post_button(chrome, f"{base}/{toggle}", toggle.capitalize(), cls="btn"),
        post_button(chrome, f"{base}/test-event", "Send test event", cls="btn"),
    ]


def ordering_text(endpoint: Endpoint, fifo: FifoQueue | None) -> Html:
    """How the endpoint's deliveries go out; for a FIFO endpoint, what holds its queue up."""
    if endpoint.spec.ordering is not Ordering.FIFO:
        return render("concurrent")
    if fifo is None:
        return render(
            'FIFO <span class="muted small">(one at a time, in order; none waiting)</span>'
        )
    noun = "delivery" if fifo.waiting == 1 else "deliveries"
    return render(
        "FIFO: {n} {noun} waiting behind {head}",
        n=fifo.waiting,
        noun=noun,
        head=link(delivery_href(fifo.head_delivery_id), mono(fifo.head_delivery_id)),
    )


def _endpoint_details(endpoint: Endpoint, now: float, fifo: FifoQueue | None) -> Html:
    spec = endpoint.spec
    rate = f"{spec.rate_limit} per {spec.rate_limit_duration:g} s" if spec.rate_limit else "none"
    return details(
        [
            ("URL", mono(spec.url)),
            ("ID", mono(endpoint.id)),
            ("Owner", spec.owner_id or "—"),
            ("Description", spec.description or "—"),
            ("Event types", ", ".join(spec.event_types) or "all"),
            (
                "Status reason",
                render(
                    '{r} <span class="muted small">since {t}</span>',
                    r=endpoint.status_reason,
                    t=when(endpoint.status_changed_at),
                ),
            ),
            ("HTTP timeout", f"{spec.http_timeout:g} s" if spec.http_timeout else "default"),
            ("Rate limit", rate),
            ("Ordering", ordering_text(endpoint, fifo)),
            ("Signature", spec.signature.scheme.value.replace("_", "-")),
            ("Authentication", auth_summary(spec.auth)),
            ("Client certificate", certificate_summary(spec.tls, now)),
            ("Receiver CA", ca_summary(spec.tls)),
        ]
    )


def _breaker_details(breaker: BreakerStatus | None) -> Html:
    return details(
        [
            ("State", breaker_text(breaker)),
            ("Breaker trips in a row", breaker.consecutive_trips if breaker else "—"),
            ("Next probe", when(breaker.next_probe_at if breaker else None)),
        ]
    )


def endpoint_page(
    chrome: Chrome,
    endpoint: Endpoint,
    breaker: BreakerStatus | None,
    recent: Sequence[Delivery],
    *,
    now: float,
    message: Html,
    fifo: FifoQueue | None = None,
) -> Html:
    base = endpoint_href(endpoint.id)
    head = heading(
        label(endpoint),
        badge(endpoint.status),
        actions=join(_endpoint_actions(chrome, endpoint, base)),
    )
    retry = render(
        "<p>Send every failed or discarded delivery of this endpoint again.</p>{go}",
        go=link(f"{base}/batch-retry", "Retry failed deliveries…", "btn"),
    )
    names = {endpoint.id: label(endpoint)}
    recent_body = (
        deliveries_table(recent, names)
        if recent
        else empty_state("No deliveries yet", "Events sent to this endpoint appear here.")
    )
    all_link = link(url("/portal/deliveries", endpoint=endpoint.id), "All deliveries →")
    body = render(
        '{head}<div class="grid">{info}{side}</div>{recent}',
        head=head,
        info=card("Details", _endpoint_details(endpoint, now, fifo)),
        side=render(
            '<div class="stack">{c}{r}</div>',
            c=card("Circuit breaker", _breaker_details(breaker)),
            r=card("Failed deliveries", retry),
        ),
        recent=join(
            [
                _secrets_card(chrome, endpoint, now),
                card("Recent deliveries", render("{t}<p>{a}</p>", t=recent_body, a=all_link)),
            ]
        ),
    )
    return page(label(endpoint), body, chrome, active="endpoints", message=message)


def _headers(pairs: Sequence[tuple[str, str]]) -> Html:
    """Event, request and response headers, credentials redacted (the API's one rule)."""
    if not pairs:
        return render('<p class="muted">none</p>')
    shown = redact_pairs(pairs)
    return table(["Header", "Value"], ([mono(n), mono(v)] for n, v in shown), cls="kv")


def body_text(data: bytes) -> str:
    """A body for reading: pretty JSON when it is JSON, else text (never interpreted).

    JSON nested deeper than events may be (a receiver's answer, an event stored before the
    limit) is shown as it came: parsing and indenting recurse once per level.
    """
    text = data.decode("utf-8", errors="replace")
    if nested_deeper_than(text, MAX_JSON_DEPTH):
        return text
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return text


def _attempt(a: Attempt) -> Html:
    summary = render(
        "<summary><strong>Attempt {n}</strong> {result} {status}"
        '<span class="muted small"> · {ms} ms · {at}</span></summary>',
        n=a.number,
        result=badge(a.result),
        status=mono(a.response_status) if a.response_status else "",
        ms=f"{a.duration * 1000:.0f}",
        at=when(a.started_at),
    )
    facts = details(
        [
            ("Request URL", mono(a.request_url)),
            ("Remote address", mono(a.remote_address or "—")),
            ("Error", a.error or "—"),
        ]
    )
    truncated = " (truncated)" if a.response_body_truncated else ""
    body = (
        render("<pre>{b}</pre>", b=body_text(a.response_body))
        if a.response_body
        else render('<p class="muted">empty</p>')
    )
    return render(
        '<details class="attempt" open>{summary}<div class="attempt-body">{facts}'
        "<h3>Request headers</h3>{req}<h3>Response headers</h3>{resp}"
        "<h3>Response body{trunc}</h3>{body}</div></details>",
        summary=summary,
        facts=facts,
        req=_headers(a.request_headers),
        resp=_headers(a.response_headers),
        trunc=truncated,
        body=body,
    )


def delivery_page(
    chrome: Chrome,
    delivery: Delivery,
    endpoint: Endpoint,
    attempts: Sequence[Attempt],
    *,
    message: Html,
) -> Html:
    actions = Html("")
    if delivery.status in RETRYABLE_STATUSES:
        actions = post_button(
            chrome, f"{delivery_href(delivery.id)}/retry", "Retry", cls="btn btn-primary"
        )
    head = heading("Delivery", mono(delivery.id), badge(delivery.status), actions=actions)
    info = details(
        [
            ("Endpoint", link(endpoint_href(endpoint.id), label(endpoint))),
            ("Event", link(f"/portal/events/{delivery.event_id}", delivery.event_id)),
            ("Event type", delivery.event_type),
            ("Status", render("{b} {r}", b=badge(delivery.status), r=delivery.status_reason)),
            ("Attempts", delivery.attempt_count),
            ("Next attempt", when(delivery.next_attempt_at)),
            ("Created", when(delivery.created_at)),
        ]
    )
    listing = (
        join(_attempt(a) for a in reversed(attempts))
        if attempts
        else empty_state(
            "No attempts yet",
            "scheduled or discarded: nothing was sent"
            if delivery.status is DeliveryStatus.DISCARDED
            else "The first attempt is on its way.",
        )
    )
    body = join([head, card("Summary", info), card("Attempts", listing)])
    return page("Delivery", body, chrome, active="deliveries", message=message)


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
            card("Headers", _headers(tuple(event.headers.items()))),
            card("Deliveries", deliveries_table(deliveries, names)),
        ]
    )
    return page("Event", body, chrome, active="deliveries")
