"""The portal's forms and action results as HTML: delivery filters, the batch-retry
confirmation, and the pages that show a secret once (the endpoint form: endpoint_form.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from convoyd.core.model import Delivery, DeliveryStatus, Endpoint, Secret, SignatureScheme
from convoyd.portal.pages import (
    CONVOY_SIMPLE_CAVEAT,
    deliveries_table,
    endpoint_href,
    heading,
    label,
)
from convoyd.portal.templates import (
    Chrome,
    Html,
    card,
    empty_state,
    esc,
    hidden_csrf,
    join,
    link,
    mono,
    notice,
    options,
    page,
    render,
    table,
    url,
    when,
)


@dataclass(frozen=True, slots=True)
class DeliveryFilters:
    """The deliveries page's filters, as typed into its form."""

    status: str = ""
    endpoint: str = ""
    event_type: str = ""
    since: str = ""
    until: str = ""

    def query_args(self) -> dict[str, str]:
        return {
            "status": self.status,
            "endpoint": self.endpoint,
            "event_type": self.event_type,
            "since": self.since,
            "until": self.until,
        }


def deliveries_page(
    chrome: Chrome,
    filters: DeliveryFilters,
    items: Sequence[Delivery],
    endpoints: Sequence[Endpoint],
    *,
    next_token: str,
    error: str,
) -> Html:
    statuses = [("", "Any status"), *((s.value, s.value.upper()) for s in DeliveryStatus)]
    choices = [("", "All endpoints"), *((e.id, label(e)) for e in endpoints)]
    form = render(
        '<form class="filters" method="get" action="/portal/deliveries">'
        '<label>Status<select name="status">{statuses}</select></label>'
        '<label>Endpoint<select name="endpoint">{endpoints}</select></label>'
        '<label>Event type<input name="event_type" value="{event_type}" '
        'placeholder="order.created"></label>'
        '<label>From (UTC)<input type="datetime-local" name="since" value="{since}"></label>'
        '<label>To (UTC)<input type="datetime-local" name="until" value="{until}"></label>'
        '<div class="filter-buttons"><button class="btn btn-primary" type="submit">Filter</button>'
        '<a class="btn btn-quiet" href="/portal/deliveries">Reset</a></div></form>',
        statuses=options(statuses, filters.status),
        endpoints=options(choices, filters.endpoint),
        event_type=filters.event_type,
        since=filters.since,
        until=filters.until,
    )
    names = {e.id: label(e) for e in endpoints}
    if items:
        listing = deliveries_table(items, names)
    elif any(filters.query_args().values()):
        listing = empty_state(
            "No deliveries match", "Change or reset the filters to see more deliveries."
        )
    else:
        listing = empty_state(
            "No deliveries yet",
            "When events are sent to your endpoints, every delivery and its attempts show here.",
        )
    pager = Html("")
    if next_token:
        href = url("/portal/deliveries", **filters.query_args(), page=next_token)
        pager = render(
            '<div class="pager">{first}{next}</div>',
            first=link(url("/portal/deliveries", **filters.query_args()), "← First page", "btn"),
            next=link(href, "Next page →", "btn"),
        )
    body = join(
        [
            heading("Deliveries"),
            notice(error, "error") if error else "",
            card("Filter", form, "card-filters"),
            listing,
            pager,
        ]
    )
    return page("Deliveries", body, chrome, active="deliveries")


def batch_retry_page(chrome: Chrome, endpoint: Endpoint, count: int) -> Html:
    base = endpoint_href(endpoint.id)
    if count:
        what = f"{count} failed or discarded deliver{'y' if count == 1 else 'ies'}"
        body = render(
            "<p>{what} of <strong>{name}</strong> will be sent again, one attempt each.</p>"
            '<form method="post" action="{action}">{csrf}'
            '<button class="btn btn-primary" type="submit">Retry {what}</button> '
            '<a class="btn btn-quiet" href="{back}">Cancel</a></form>',
            what=what,
            name=label(endpoint),
            action=f"{base}/batch-retry",
            csrf=hidden_csrf(chrome),
            back=base,
        )
    else:
        body = empty_state(
            "Nothing to retry",
            "This endpoint has no failed or discarded deliveries.",
            link(base, "Back to the endpoint", "btn"),
        )
    content = join([heading("Retry failed deliveries"), card(label(endpoint), body)])
    return page("Retry failed deliveries", content, chrome, active="endpoints")


def secrets_page(
    chrome: Chrome,
    endpoint: Endpoint,
    shown: Sequence[Secret],
    *,
    title: str,
    intro: str,
    previous: Sequence[Secret] = (),
    now: float,
) -> Html:
    """A secret's value, shown once in the answer to a POST (never in a URL)."""
    rows = [[mono(s.id), render('<code class="secret">{v}</code>', v=s.value)] for s in shown]
    parts: list[object] = [
        notice("Copy it now: it is not shown again on other pages.", "warn"),
        render("<p>{t}</p>", t=intro),
        table(["Secret", "Value"], rows),
    ]
    if previous:
        parts.append(
            table(
                ["Previous secret", "Signs until"],
                ([mono(s.id), when(s.expires_at, "never")] for s in previous if s.is_live(now)),
            )
        )
    if endpoint.spec.signature.scheme is SignatureScheme.CONVOY_SIMPLE and previous:
        parts.append(render('<p class="callout">{t}</p>', t=CONVOY_SIMPLE_CAVEAT))
    parts.append(link(endpoint_href(endpoint.id), "Back to the endpoint", "btn"))
    content = join([heading(title), card(label(endpoint), join(parts))])
    return page(title, content, chrome, active="endpoints")


NOTICES: Mapping[str, str] = {
    "retried": "Retry queued: the delivery gets one more attempt now.",
    "batch": "Retry queued for the failed deliveries; they are being sent again.",
    "paused": "Endpoint paused: new events are recorded but not sent until you resume it.",
    "resumed": "Endpoint resumed: deliveries flow again.",
    "updated": "Endpoint saved.",
    "test": "Test event sent. Its delivery shows below in a moment.",
    "test-skipped": "No test delivery: this endpoint does not subscribe to convoyd.test events.",
}


def done_notice(key: str) -> Html:
    text = NOTICES.get(key)
    return notice(text) if text else Html("")


def error_notice(text: str) -> Html:
    return notice(text, "error") if text else esc("")
