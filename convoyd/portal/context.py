"""What the portal's handlers share: the services they call and who is looking."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from convoyd.core.model import BreakerStatus, PortalLink, PortalSession, RetryPolicy
from convoyd.portal.health import HealthSource
from convoyd.portal.templates import Chrome
from convoyd.service.deliveries import DeliveryManager
from convoyd.service.endpoints import EndpointManager
from convoyd.service.events import EventManager
from convoyd.service.portal import PortalManager
from convoyd.settings import PortalSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryDefaults:
    """What the engine uses for an endpoint that sets no value of its own."""

    http_timeout: float
    retry_policy: RetryPolicy


@dataclass(frozen=True, slots=True, kw_only=True)
class PortalServices:
    """The same service layer the gRPC API uses, and the little the portal adds."""

    links: PortalManager
    endpoints: EndpointManager
    events: EventManager
    deliveries: DeliveryManager
    #: The engine's view of an endpoint's circuit breaker (None: not known).
    breaker_status: Callable[[str], BreakerStatus | None]
    settings: PortalSettings
    #: The engine's defaults now (the endpoint pages and forms say them).
    delivery_defaults: Callable[[], DeliveryDefaults]
    #: The portal's base URL (public_url, or the HTTP listener as bound).
    public_url: Callable[[], str]
    clock: Callable[[], float]
    #: The delivery health counters (the store) behind the charts and sparklines.
    health: HealthSource

    @property
    def secure_cookies(self) -> bool:
        return self.public_url().startswith("https://")


@dataclass(frozen=True, slots=True, kw_only=True)
class Viewer:
    """The session a request came with, its link (the scope and rights) and form token."""

    link: PortalLink
    session: PortalSession
    csrf: str

    @property
    def can_manage(self) -> bool:
        return self.link.can_manage_endpoints

    @property
    def chrome(self) -> Chrome:
        link = self.link
        if link.all_owners:
            scope = "All owners (operator)"
        elif link.endpoint_ids:
            count = len(link.endpoint_ids)
            scope = f"{count} endpoint{'s' if count != 1 else ''}"
        else:
            scope = f"Owner {link.owner_id}"
        return Chrome(scope=scope, can_manage=link.can_manage_endpoints, csrf=self.csrf)


SERVICES: web.AppKey[PortalServices] = web.AppKey("portal_services", PortalServices)
_VIEWER: web.RequestKey[Viewer] = web.RequestKey("portal_viewer", Viewer)
#: For the access log.
LINK_ID: web.RequestKey[str] = web.RequestKey("portal_link_id", str)
#: The link whose kind shapes the response headers (framing).
LINK: web.RequestKey[PortalLink] = web.RequestKey("portal_link", PortalLink)


def services(request: web.Request) -> PortalServices:
    return request.app[SERVICES]


def viewer(request: web.Request) -> Viewer:
    found = request.get(_VIEWER)
    assert isinstance(found, Viewer), "the session middleware runs before every handler"
    return found


def set_viewer(request: web.Request, who: Viewer) -> None:
    request[_VIEWER] = who
    request[LINK_ID] = who.link.id
    request[LINK] = who.link


def chrome_of(request: web.Request) -> Chrome | None:
    found = request.get(_VIEWER)
    return found.chrome if isinstance(found, Viewer) else None
