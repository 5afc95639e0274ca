"""The portal's GET handlers: every read goes through the service layer, inside the scope."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from aiohttp import web

from convoyd.core.model import PENDING_STATUSES, Delivery, DeliveryStatus, Secret
from convoyd.core.request import auth_header_name
from convoyd.errors import NotFoundError, PermissionDeniedError, ValidationError
from convoyd.portal import (
    endpoint_form,
    flash,
    forms,
    health,
    pages,
    pages_delivery,
    pages_endpoint,
    scope,
)
from convoyd.portal.context import PortalServices, services, viewer
from convoyd.portal.security import require_manage
from convoyd.portal.templates import EMPTY, respond
from convoyd.store.base import DeliveryQuery

RECENT = 10
MAX_ATTEMPTS_SHOWN = 100
MAX_EVENT_DELIVERIES_SHOWN = 100
#: The pending deliveries the delete confirmation counts exactly (past it: "100+").
MAX_PENDING_COUNTED = 100


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
    lines = await health.sparklines(svc.health, [e.id for e in found.items], svc.clock())
    body = pages.endpoints_page(
        who.chrome,
        rows,
        next_token=found.next_token,
        can_create=who.can_manage and not who.link.endpoint_ids,
        show_owner=who.link.all_owners,
        message=flash.shown(request),
        now=svc.clock(),
        sparklines=lines,
    )
    return respond(body)


async def endpoint(request: web.Request) -> web.StreamResponse:
    """The endpoint's page, with the result of the form that led here (a new secret's value
    shown once: read here, through the same call as Reveal secret)."""
    who, svc = viewer(request), services(request)
    found = await scope.endpoint(svc, who.link, request.match_info["endpoint_id"])
    result = flash.take(request)
    shown: tuple[Secret, ...] = ()
    if result is not None and result.secret_ids and who.can_manage:
        live = await svc.endpoints.live_secrets(found.id)
        shown = tuple(s for s in live if s.id in result.secret_ids)
    recent = await svc.deliveries.list(DeliveryQuery(endpoint_ids=(found.id,)), page_size=RECENT)
    body = pages_endpoint.endpoint_page(
        who.chrome,
        found,
        svc.breaker_status(found.id),
        recent.items,
        now=svc.clock(),
        message=result.notice() if result is not None else EMPTY,
        defaults=svc.delivery_defaults(),
        fifo=await svc.endpoints.fifo_queue(found),
        shown_secrets=shown,
        new_secret=result is not None and result.new_secret,
        health=await health.endpoint_health(svc.health, found.id, svc.clock()),
    )
    return respond(body)


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
        who.chrome,
        filters,
        items,
        in_scope.items,
        next_token=next_token,
        error=error,
        message=flash.shown(request),
    )
    return respond(body, 400 if error else 200)


async def delivery(request: web.Request) -> web.StreamResponse:
    """A delivery, its attempts and the body they sent (the event's payload)."""
    who, svc = viewer(request), services(request)
    found, endpoint = await scope.delivery(svc, who.link, request.match_info["delivery_id"])
    attempts = await svc.deliveries.attempts(found.id, page_size=MAX_ATTEMPTS_SHOWN)
    try:
        payload: bytes | None = (await svc.events.get(found.event_id)).data
    except NotFoundError:
        payload = None
    body = pages_delivery.delivery_page(
        who.chrome,
        found,
        endpoint,
        attempts.items,
        payload=payload,
        message=flash.shown(request),
        auth_header=auth_header_name(endpoint.spec.auth),
    )
    return respond(body)


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
    return respond(pages_delivery.event_page(who.chrome, found, listed.items, names))


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
        defaults=services(request).delivery_defaults(),
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
        defaults=services(request).delivery_defaults(),
    )
    return respond(body)


async def batch_retry_confirm(request: web.Request) -> web.StreamResponse:
    """The dry run: how many deliveries a batch retry would send again, and a confirm button."""
    who, svc = viewer(request), services(request)
    found = await scope.endpoint(svc, who.link, request.match_info["endpoint_id"])
    count = await svc.deliveries.batch_retry(DeliveryQuery(endpoint_ids=(found.id,)), dry_run=True)
    return respond(forms.batch_retry_page(who.chrome, found, count))


async def delete_confirm(request: web.Request) -> web.StreamResponse:
    """What deleting the endpoint loses, and the button that deletes it (a POST)."""
    who = require_manage(request)
    svc = services(request)
    found = await scope.endpoint(svc, who.link, request.match_info["endpoint_id"])
    query = DeliveryQuery(endpoint_ids=(found.id,))
    pending = await svc.deliveries.list(
        dataclasses.replace(query, statuses=tuple(sorted(PENDING_STATUSES))),
        page_size=MAX_PENDING_COUNTED,
    )
    any_deliveries = bool(pending.items) or bool(
        (await svc.deliveries.list(query, page_size=1)).items
    )
    body = forms.delete_page(
        who.chrome,
        found,
        pending=len(pending.items),
        more=bool(pending.next_token),
        any_deliveries=any_deliveries,
    )
    return respond(body)
