"""The portal's GET handlers: every read goes through the service layer, inside the scope."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from convoyd.core.model import Delivery, DeliveryStatus, Endpoint
from convoyd.errors import NotFoundError, PermissionDeniedError, ValidationError
from convoyd.portal import endpoint_form, forms, pages, scope
from convoyd.portal.context import PortalServices, services, viewer
from convoyd.portal.security import require_manage
from convoyd.portal.templates import Html, respond
from convoyd.store.base import DeliveryQuery

RECENT = 10
MAX_ATTEMPTS_SHOWN = 100
MAX_EVENT_DELIVERIES_SHOWN = 100


async def last_delivery(svc: PortalServices, endpoint_id: str) -> Delivery | None:
    got = await svc.deliveries.list(DeliveryQuery(endpoint_ids=(endpoint_id,)), page_size=1)
    return got.items[0] if got.items else None


async def endpoints(request: web.Request) -> web.StreamResponse:
    who, svc = viewer(request), services(request)
    try:
        found = await scope.endpoints(svc, who.link, request.query.get("page", ""))
    except ValidationError:  # a stale page token: start from the top
        found = await scope.endpoints(svc, who.link, "")
    rows = [
        pages.EndpointRow(e, svc.breaker_status(e.id), await last_delivery(svc, e.id))
        for e in found.items
    ]
    body = pages.endpoints_page(
        who.chrome,
        rows,
        next_token=found.next_token,
        can_create=who.can_manage and not who.link.endpoint_ids,
        show_owner=who.link.all_owners,
        message=forms.done_notice(request.query.get("done", "")),
    )
    return respond(body)


async def show_endpoint(
    request: web.Request, endpoint: Endpoint, *, message: Html, status: int = 200
) -> web.Response:
    """The endpoint's page (also after an action, with what happened)."""
    who, svc = viewer(request), services(request)
    recent = await svc.deliveries.list(DeliveryQuery(endpoint_ids=(endpoint.id,)), page_size=RECENT)
    body = pages.endpoint_page(
        who.chrome,
        endpoint,
        svc.breaker_status(endpoint.id),
        recent.items,
        now=svc.clock(),
        message=message,
        fifo=await svc.endpoints.fifo_queue(endpoint),
    )
    return respond(body, status)


async def endpoint(request: web.Request) -> web.StreamResponse:
    found = await scope.endpoint(
        services(request), viewer(request).link, request.match_info["endpoint_id"]
    )
    return await show_endpoint(
        request, found, message=forms.done_notice(request.query.get("done", ""))
    )


def _moment(text: str, name: str) -> float | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError.single(name, "is not a date and time") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _query(filters: forms.DeliveryFilters) -> DeliveryQuery:
    statuses: tuple[DeliveryStatus, ...] = ()
    if filters.status:
        try:
            statuses = (DeliveryStatus(filters.status),)
        except ValueError:
            raise ValidationError.single("status", "is not a delivery status") from None
    return DeliveryQuery(
        endpoint_ids=(filters.endpoint,) if filters.endpoint else (),
        statuses=statuses,
        event_type=filters.event_type.strip(),
        created_after=_moment(filters.since, "since"),
        created_before=_moment(filters.until, "until"),
    )


async def deliveries(request: web.Request) -> web.StreamResponse:
    who, svc = viewer(request), services(request)
    q = request.query
    filters = forms.DeliveryFilters(
        status=q.get("status", ""),
        endpoint=q.get("endpoint", ""),
        event_type=q.get("event_type", ""),
        since=q.get("since", ""),
        until=q.get("until", ""),
    )
    items: tuple[Delivery, ...] = ()
    next_token = error = ""
    try:
        query = _query(filters)
        found = await scope.deliveries(
            svc, who.link, query, page_size=50, page_token=q.get("page", "")
        )
        items, next_token = found.items, found.next_token
    except ValidationError as exc:
        error = str(exc)
    in_scope = await scope.endpoints(svc, who.link, "")
    body = forms.deliveries_page(
        who.chrome, filters, items, in_scope.items, next_token=next_token, error=error
    )
    return respond(body, 400 if error else 200)


async def show_delivery(
    request: web.Request, delivery_id: str, *, message: Html, status: int = 200
) -> web.Response:
    who, svc = viewer(request), services(request)
    found, endpoint = await scope.delivery(svc, who.link, delivery_id)
    attempts = await svc.deliveries.attempts(found.id, page_size=MAX_ATTEMPTS_SHOWN)
    body = pages.delivery_page(who.chrome, found, endpoint, attempts.items, message=message)
    return respond(body, status)


async def delivery(request: web.Request) -> web.StreamResponse:
    return await show_delivery(
        request,
        request.match_info["delivery_id"],
        message=forms.done_notice(request.query.get("done", "")),
    )


async def event(request: web.Request) -> web.StreamResponse:
    who, svc = viewer(request), services(request)
    found = await scope.event(svc, who.link, request.match_info["event_id"])
    listed = await scope.deliveries(
        svc, who.link, DeliveryQuery(event_id=found.id), page_size=MAX_EVENT_DELIVERIES_SHOWN
    )
    names: dict[str, str] = {}
    for endpoint_id in {d.endpoint_id for d in listed.items}:
        try:
            names[endpoint_id] = pages.label(await svc.endpoints.get(endpoint_id))
        except NotFoundError:
            continue
    return respond(pages.event_page(who.chrome, found, listed.items, names))


def creatable(request: web.Request) -> None:
    """New endpoints need a manage link whose scope can hold them (an owner, or all)."""
    who = require_manage(request)
    if who.link.endpoint_ids:
        raise PermissionDeniedError(
            "This portal link covers a fixed list of endpoints, so it cannot add one."
        )


async def new_endpoint(request: web.Request) -> web.StreamResponse:
    creatable(request)
    who = viewer(request)
    body = endpoint_form.endpoint_form_page(
        who.chrome,
        endpoint_form.EndpointForm(values={"rate_limit": "0"}),
        action="/portal/endpoints/new",
        title="New endpoint",
        ask_owner=who.link.all_owners,
    )
    return respond(body)


async def edit_endpoint(request: web.Request) -> web.StreamResponse:
    who = require_manage(request)
    found = await scope.endpoint(services(request), who.link, request.match_info["endpoint_id"])
    body = endpoint_form.endpoint_form_page(
        who.chrome,
        endpoint_form.EndpointForm.of(found),
        action=f"{pages.endpoint_href(found.id)}/edit",
        title=f"Edit {pages.label(found)}",
        ask_owner=False,
    )
    return respond(body)


async def batch_retry_confirm(request: web.Request) -> web.StreamResponse:
    """The dry run: how many deliveries a batch retry would send again, and a confirm button."""
    who, svc = viewer(request), services(request)
    found = await scope.endpoint(svc, who.link, request.match_info["endpoint_id"])
    count = await svc.deliveries.batch_retry(DeliveryQuery(endpoint_ids=(found.id,)), dry_run=True)
    return respond(forms.batch_retry_page(who.chrome, found, count))
