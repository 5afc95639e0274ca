"""The portal's shared page parts and its endpoints list: names, links, headings, the deliveries
table, headers and bodies as read (one endpoint: pages_endpoint.py; a delivery and an event:
pages_delivery.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from convoyd.core.model import BreakerStatus, Delivery, Endpoint
from convoyd.core.request import redact_pairs
from convoyd.core.validation import MAX_JSON_DEPTH, nested_deeper_than
from convoyd.portal.status import endpoint_health, health_line
from convoyd.portal.templates import (
    EMPTY,
    Chrome,
    Html,
    badge,
    empty_state,
    esc,
    join,
    link,
    mono,
    page,
    render,
    table,
    url,
    when,
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
    now: float,
    sparklines: Mapping[str, Html] | None = None,
) -> Html:
    """The endpoints in scope, each with its one status; ``sparklines`` (by endpoint id), when
    given, adds a column of each endpoint's recent health."""
    create = link("/portal/endpoints/new", "New endpoint", "btn btn-primary") if can_create else ""
    if not rows:
        hint = (
            "Create an endpoint to start receiving webhooks."
            if can_create
            else "When an endpoint is set up for you, it appears here with its deliveries."
        )
        body = empty_state("No endpoints yet", hint, esc(create))
    else:
        headers = ["Endpoint", *(["Owner"] if show_owner else []), "Status"]
        headers += [*(["Last 24 hours"] if sparklines is not None else []), "Last delivery"]
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
                    health_line(endpoint_health(r.endpoint, r.breaker, r.last, now)),
                    *([sparklines.get(r.endpoint.id, EMPTY)] if sparklines is not None else []),
                    when(r.last.last_attempt_at or r.last.created_at) if r.last else "never",
                ]
                for r in rows
            ),
            cls="stacked endpoints",
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
        cls="stacked",
    )


def headers_table(pairs: Sequence[tuple[str, str]], *, auth_header: str = "") -> Html:
    """Event, request, response and custom headers, credentials redacted (the API's one rule)."""
    if not pairs:
        return render('<p class="muted">none</p>')
    shown = redact_pairs(pairs, auth_header=auth_header)
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
