"""The portal's URL map and its static files (served by convoyd itself: no other hosts)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from convoyd.portal import actions, flash, live, security, views
from convoyd.portal.context import SERVICES, PortalServices

STATIC_TYPES = {"portal.css": "text/css", "portal.js": "text/javascript"}


def _static_files() -> dict[str, bytes]:
    folder = resources.files("convoyd.portal") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_TYPES}


def build_portal(services: PortalServices) -> web.Application:
    """The /portal/ sub-application: its middlewares apply to portal paths only."""
    app = web.Application(
        middlewares=[
            security.access_middleware,
            security.headers_middleware,
            security.session_middleware,
            flash.flash_middleware,
        ]
    )
    app[SERVICES] = services
    files = _static_files()

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type=STATIC_TYPES[name], charset="utf-8")

    get, post = app.router.add_get, app.router.add_post
    # GET only: a HEAD (link previews, scanners) must not use up a one-time link.
    get("/enter", security.enter, allow_head=False)
    post("/logout", security.logout)
    get("/signed-out", security.signed_out)
    get("/static/{name}", static)
    get("/", views.endpoints)
    get("/endpoints/new", views.new_endpoint)
    post("/endpoints/new", actions.create_endpoint)
    get("/endpoints/{endpoint_id}", views.endpoint)
    get("/endpoints/{endpoint_id}/edit", views.edit_endpoint)
    post("/endpoints/{endpoint_id}/edit", actions.update_endpoint)
    post("/endpoints/{endpoint_id}/pause", actions.pause)
    post("/endpoints/{endpoint_id}/resume", actions.resume)
    post("/endpoints/{endpoint_id}/rotate-secret", actions.rotate_secret)
    post("/endpoints/{endpoint_id}/secret", actions.reveal_secret)
    post("/endpoints/{endpoint_id}/test-event", actions.send_test_event)
    get("/endpoints/{endpoint_id}/delete", views.delete_confirm)
    post("/endpoints/{endpoint_id}/delete", actions.delete_endpoint)
    get("/endpoints/{endpoint_id}/batch-retry", views.batch_retry_confirm)
    post("/endpoints/{endpoint_id}/batch-retry", actions.batch_retry)
    get("/deliveries", views.deliveries)
    get("/deliveries/{delivery_id}", views.delivery)
    live.install(app)  # GET /stream/deliveries[/{delivery_id}]: live updates (SSE)
    post("/deliveries/{delivery_id}/retry", actions.retry_delivery)
    post("/deliveries/{delivery_id}/resend", actions.resend_delivery)
    get("/events/{event_id}", views.event)
    return app


def enter_url(base_url: str, token: str) -> str:
    """The URL that opens the portal with a link's token (exchanged at once for a cookie)."""
    return f"{base_url}/portal/enter?token={token}"
