"""The portal's forms as HTML: the deliveries page and its filters, and the confirmations of
a batch retry and of deleting an endpoint (the endpoint form: endpoint_form.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from convoyd.core.model import Delivery, DeliveryStatus, Endpoint
from convoyd.portal.pages import deliveries_table, endpoint_href, heading, label
from convoyd.portal.templates import (
    EMPTY,
    Chrome,
    Html,
    card,
    empty_state,
    esc,
    hidden_csrf,
    join,
    link,
    notice,
    options,
    page,
    render,
    url,
)


@dataclass(frozen=True, slots=True)
class DeliveryFilters:
    """The deliveries page's filters, as typed into its form."""

    status: str = ""
    endpoint: str = ""
    event_type: str = ""
    since: str = ""
    until: str = ""

    def stream_url(self) -> str:
        """The live stream of the deliveries these filters show."""
        return url("/portal/stream/deliveries", **self.query_args())

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
    message: Html = EMPTY,
) -> Html:
    """The deliveries in scope that match the filters; the region with the id
    ``deliveries-live`` is what the live stream refreshes."""
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
    live = render(
        '<div id="deliveries-live" data-stream="{stream}">{listing}{pager}</div>',
        stream=filters.stream_url(),
        listing=listing,
        pager=pager,
    )
    body = join(
        [
            heading("Deliveries"),
            notice(error, "error") if error else "",
            card("Filter", form, "card-filters"),
            live,
        ]
    )
    return page("Deliveries", body, chrome, active="deliveries", message=message)


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


def delete_page(
    chrome: Chrome, endpoint: Endpoint, *, pending: int, more: bool, any_deliveries: bool
) -> Html:
    """What deleting ``endpoint`` loses, and the button that does it (``pending``: deliveries
    still to be sent, ``more``: at least that many)."""
    lost = [
        render(
            "its settings, URL and authentication, and its {n} signing secret{s}",
            n=len(endpoint.secrets),
            s="" if len(endpoint.secrets) == 1 else "s",
        ),
        "every delivery to it and every attempt's record: they no longer show here"
        if any_deliveries
        else "its delivery history (it has no deliveries yet)",
    ]
    if pending:
        count = f"{pending}{'+' if more else ''}"
        lost.append(
            f"{count} deliver{'y' if pending == 1 and not more else 'ies'} not sent yet:"
            " they are never sent"
        )
    base = endpoint_href(endpoint.id)
    body = render(
        "<p>Deleting <strong>{name}</strong> (<code>{url}</code>) loses, for good:</p>"
        "<ul>{lost}</ul><p>Events sent from now on no longer go to it. This cannot be"
        " undone; pause the endpoint instead to stop deliveries for a while.</p>"
        '<form method="post" action="{action}">{csrf}'
        '<button class="btn btn-danger" type="submit">Delete {name}</button> '
        '<a class="btn btn-quiet" href="{back}">Cancel</a></form>',
        name=label(endpoint),
        url=endpoint.spec.url,
        lost=join(render("<li>{x}</li>", x=x) for x in lost),
        action=f"{base}/delete",
        csrf=hidden_csrf(chrome),
        back=base,
    )
    content = join([heading("Delete endpoint"), card(label(endpoint), body)])
    return page("Delete endpoint", content, chrome, active="endpoints")


def error_notice(text: str) -> Html:
    return notice(text, "error") if text else esc("")
