"""One endpoint's page as HTML: its status in words, settings as they apply (defaults said as
such), signing secrets, a test event, retries and its recent deliveries."""

from __future__ import annotations

from collections.abc import Sequence

from convoyd.core.model import (
    ApiKeyAuth,
    BreakerStatus,
    Delivery,
    Endpoint,
    EndpointStatus,
    FifoQueue,
    Ordering,
    Secret,
    SignatureScheme,
)
from convoyd.core.request import auth_header_name, redact_pairs
from convoyd.core.routing import wants
from convoyd.portal.context import DeliveryDefaults
from convoyd.portal.credentials import auth_summary, ca_summary, certificate_summary
from convoyd.portal.pages import (
    deliveries_table,
    delivery_href,
    endpoint_href,
    heading,
    label,
)
from convoyd.portal.retry_form import summary as retry_summary
from convoyd.portal.status import EndpointHealth, endpoint_health, health_badge
from convoyd.portal.templates import (
    EMPTY,
    Chrome,
    Html,
    card,
    copyable,
    details,
    empty_state,
    hidden_csrf,
    join,
    link,
    mono,
    options,
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
TEST_EVENT_TYPE = "convoyd.test"


def test_event_types(event_types: Sequence[str]) -> list[str]:
    """Event types a test event may have so that this endpoint takes it: convoyd.test when it
    subscribes to it, each type it names, and a ``.test`` type for each pattern."""
    found = [TEST_EVENT_TYPE] if wants(event_types, TEST_EVENT_TYPE) else []
    for pattern in event_types:
        candidate = pattern.replace("*", "test") if "*" in pattern else pattern
        if wants(event_types, candidate) and candidate not in found:
            found.append(candidate)
    return found


def _secret_rows(secrets: Sequence[Secret]) -> Html:
    return table(
        ["Secret", "Value"],
        (
            [
                mono(s.id),
                copyable(s.value, f"secret-{s.id}", what="the secret", cls="secret"),
            ]
            for s in secrets
        ),
        cls="secrets",
    )


def _shown_secrets(shown: Sequence[Secret], *, new: bool) -> Html:
    """The secrets a form result asked to show: shown on this page load only."""
    intro = (
        "Webhooks to this endpoint are signed with this secret from now on: add it to your"
        " receiver."
        if new
        else "Your receiver verifies each webhook's signature with these secrets."
    )
    return card(
        "New signing secret" if new else "Signing secret values",
        render(
            '<p>{intro}</p>{rows}<p class="muted small">This page shows the value once; a reload'
            " hides it. Reveal secret shows it again whenever you need it.</p>",
            intro=intro,
            rows=_secret_rows(shown),
        ),
        "card-secret",
    )


def _secrets_card(chrome: Chrome, endpoint: Endpoint, now: float) -> Html:
    rows = [
        [mono(s.id), when(s.created_at), when(s.expires_at, "never")]
        for s in endpoint.live_secrets(now)
    ]
    body = table(["Secret", "Created", "Expires"], rows)
    if chrome.can_manage:
        base = endpoint_href(endpoint.id)
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
            csrf=hidden_csrf(chrome),
            options=options(OVERLAPS, "86400"),
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
        link(f"{base}/delete", "Delete…", "btn btn-danger"),
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


def _endpoint_details(endpoint: Endpoint, fifo: FifoQueue | None) -> Html:
    spec = endpoint.spec
    return details(
        [
            ("URL", copyable(spec.url, "endpoint-url", what="the URL")),
            ("ID", copyable(endpoint.id, "endpoint-id", what="the endpoint ID")),
            ("Owner", spec.owner_id or "—"),
            ("Description", spec.description or "—"),
            ("Event types", ", ".join(spec.event_types) or "all"),
            ("Ordering", ordering_text(endpoint, fifo)),
        ]
    )


def _custom_headers(endpoint: Endpoint) -> Html:
    """Each custom header as ``Name: value``, credential-like values redacted."""
    spec = endpoint.spec
    if not spec.headers:
        return render("none")
    shown = redact_pairs(spec.headers.items(), auth_header=auth_header_name(spec.auth))
    return render(
        '<ul class="header-list">{items}</ul>',
        items=join(render("<li>{h}</li>", h=mono(f"{n}: {v}")) for n, v in shown),
    )


def _sending(endpoint: Endpoint, defaults: DeliveryDefaults) -> Html:
    spec = endpoint.spec
    rate = f"{spec.rate_limit} per {spec.rate_limit_duration:g} s" if spec.rate_limit else "none"
    timeout = (
        f"{spec.http_timeout:g} s"
        if spec.http_timeout
        else f"{defaults.http_timeout:g} s (default)"
    )
    return details(
        [
            ("HTTP timeout", timeout),
            ("Retries", retry_summary(spec.retry_policy, defaults.retry_policy)),
            ("Rate limit", rate),
            ("Content type", mono(spec.content_type)),
            ("Custom headers", _custom_headers(endpoint)),
        ]
    )


def _auth_text(endpoint: Endpoint) -> Html:
    """The method, and the header its credentials go in (the API key's says it already)."""
    auth = endpoint.spec.auth
    if auth is None or isinstance(auth, ApiKeyAuth):
        return auth_summary(auth)
    return render(
        '{s} <span class="muted small">(sent in the <code>{h}</code> header)</span>',
        s=auth_summary(auth),
        h=auth_header_name(auth),
    )


def _security(endpoint: Endpoint, now: float) -> Html:
    spec = endpoint.spec
    return details(
        [
            ("Signature", spec.signature.scheme.value.replace("_", "-")),
            ("Authentication", _auth_text(endpoint)),
            ("Client certificate", certificate_summary(spec.tls, now)),
            ("Receiver CA", ca_summary(spec.tls)),
        ]
    )


def _status_card(endpoint: Endpoint, health: EndpointHealth) -> Html:
    return render(
        '<section class="card card-status status-card-{tone}"><p class="status-line">{b}'
        ' <span class="health-detail">— {d}</span></p>'
        '<p class="muted small">Last status change {t}: {r}</p></section>',
        tone=health.tone,
        b=health_badge(health),
        d=health.detail,
        t=when(endpoint.status_changed_at),
        r=endpoint.status_reason or "—",
    )


def _test_event(chrome: Chrome, endpoint: Endpoint) -> Html:
    choices = test_event_types(endpoint.spec.event_types)
    if not choices:
        return Html("")
    base = endpoint_href(endpoint.id)
    form = render(
        '<form class="row-form" method="post" action="{action}">{csrf}'
        '<label for="test-type">Event type</label>'
        '<select id="test-type" name="event_type">{options}</select>'
        '<button type="submit" class="btn">Send test event</button></form>',
        action=f"{base}/test-event",
        csrf=hidden_csrf(chrome),
        options=options(((c, c) for c in choices), choices[0]),
    )
    return card(
        "Send a test event",
        render(
            "<p>Sends a small JSON event of the type you choose to this endpoint only.</p>{f}",
            f=form,
        ),
    )


def endpoint_page(
    chrome: Chrome,
    endpoint: Endpoint,
    breaker: BreakerStatus | None,
    recent: Sequence[Delivery],
    *,
    now: float,
    message: Html,
    defaults: DeliveryDefaults,
    fifo: FifoQueue | None = None,
    shown_secrets: Sequence[Secret] = (),
    new_secret: bool = False,
    health: Html = EMPTY,
) -> Html:
    """``health``: the delivery health charts, placed under the status; ``shown_secrets``: the
    secret values a form result shows on this one page load (``new_secret``: made by it)."""
    base = endpoint_href(endpoint.id)
    health_now = endpoint_health(endpoint, breaker, recent[0] if recent else None, now)
    head = heading(
        label(endpoint),
        health_badge(health_now),
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
        "{head}{secrets}{status}{health}"
        '<div class="grid">{info}<div class="stack">{sending}{security}</div></div>'
        '<div class="grid grid-even">{test}{retry}</div>{keys}{recent}',
        head=head,
        secrets=_shown_secrets(shown_secrets, new=new_secret) if shown_secrets else "",
        status=_status_card(endpoint, health_now),
        health=health,
        info=card("Details", _endpoint_details(endpoint, fifo)),
        sending=card("Sending", _sending(endpoint, defaults)),
        security=card("Signature and authentication", _security(endpoint, now)),
        test=_test_event(chrome, endpoint) if chrome.can_manage else "",
        retry=card("Failed deliveries", retry),
        keys=_secrets_card(chrome, endpoint, now),
        recent=card("Recent deliveries", render("{t}<p>{a}</p>", t=recent_body, a=all_link)),
    )
    return page(label(endpoint), body, chrome, active="endpoints", message=message)
