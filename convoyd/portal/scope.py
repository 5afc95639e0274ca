"""The link's scope, enforced on every read and action: anything outside it does not exist.

An id outside the scope gets the same NotFoundError (a 404 page) as an id that was never
issued, so the portal never confirms that another owner's resource exists.
"""

from __future__ import annotations

import dataclasses

from convoyd.core import ids
from convoyd.core.model import Delivery, Endpoint, Event, Page, PortalLink
from convoyd.core.validation import excerpt
from convoyd.errors import NotFoundError
from convoyd.portal.context import PortalServices
from convoyd.store.base import DeliveryQuery

_PAGE = 1000


def _missing(kind: str, value: str) -> NotFoundError:
    return NotFoundError(f"{kind} {excerpt(value)} not found")  # any text from the URL path


async def endpoint(services: PortalServices, link: PortalLink, endpoint_id: str) -> Endpoint:
    if not ids.is_valid_id("ep", endpoint_id):
        raise _missing("endpoint", endpoint_id)
    found = await services.endpoints.get(endpoint_id)
    if not link.covers(found):
        raise _missing("endpoint", endpoint_id)
    return found


async def delivery(
    services: PortalServices, link: PortalLink, delivery_id: str
) -> tuple[Delivery, Endpoint]:
    if not ids.is_valid_id("dl", delivery_id):
        raise _missing("delivery", delivery_id)
    found = await services.deliveries.get(delivery_id)
    try:
        return found, await endpoint(services, link, found.endpoint_id)
    except NotFoundError:
        raise _missing("delivery", delivery_id) from None


async def endpoint_ids(services: PortalServices, link: PortalLink) -> tuple[str, ...] | None:
    """The ids of every endpoint in scope now; None: every endpoint (the operator's scope)."""
    if link.all_owners:
        return None
    if link.endpoint_ids:
        return link.endpoint_ids
    out: list[str] = []
    token = ""
    while True:
        page = await services.endpoints.list(
            owner_id=link.owner_id, page_size=_PAGE, page_token=token
        )
        out.extend(e.id for e in page.items)
        if not page.next_token:
            return tuple(out)
        token = page.next_token


async def event(services: PortalServices, link: PortalLink, event_id: str) -> Event:
    """The event, if any of its deliveries goes to an endpoint in scope."""
    if not ids.is_valid_id("ev", event_id):
        raise _missing("event", event_id)
    found = await services.events.get(event_id)
    if link.all_owners:
        return found
    scoped = await endpoint_ids(services, link)
    if scoped:
        query = DeliveryQuery(event_id=event_id, endpoint_ids=scoped)
        if (await services.deliveries.list(query, page_size=1)).items:
            return found
    raise _missing("event", event_id)


async def endpoints(services: PortalServices, link: PortalLink, page_token: str) -> Page[Endpoint]:
    """One page of the endpoints in scope, newest first."""
    if link.all_owners:
        return await services.endpoints.list(page_token=page_token)
    if link.owner_id:
        return await services.endpoints.list(owner_id=link.owner_id, page_token=page_token)
    found: list[Endpoint] = []
    for endpoint_id in sorted(link.endpoint_ids, reverse=True):
        try:
            found.append(await services.endpoints.get(endpoint_id))
        except NotFoundError:  # deleted since the link was made
            continue
    return Page(items=tuple(found))


async def deliveries(
    services: PortalServices,
    link: PortalLink,
    query: DeliveryQuery,
    *,
    page_size: int = 0,
    page_token: str = "",
) -> Page[Delivery]:
    """One page of the deliveries that match ``query`` inside the scope. ``query`` may name
    one endpoint (checked to be in scope) or none (every endpoint in scope)."""
    if query.endpoint_ids:
        for endpoint_id in query.endpoint_ids:
            await endpoint(services, link, endpoint_id)
    else:
        scoped = await endpoint_ids(services, link)
        if scoped is not None:
            if not scoped:  # an empty filter would mean "every endpoint": nothing matches
                return Page(items=())
            query = dataclasses.replace(query, endpoint_ids=scoped, owner_id="")
    return await services.deliveries.list(query, page_size=page_size, page_token=page_token)
