"""The HTTP listener's app: /healthz, and the web portal under /portal/ when it is given."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from convoyd.portal.context import PortalServices
from convoyd.portal.routes import build_portal

Ready = Callable[[], bool]
READY_KEY: web.AppKey[Ready] = web.AppKey("ready")


async def healthz(request: web.Request) -> web.Response:
    if request.app[READY_KEY]():
        return web.json_response({"status": "serving"})
    return web.json_response({"status": "not serving"}, status=503)


async def to_portal(request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": "/portal/"})


def build_app(ready: Callable[[], bool], portal: PortalServices | None = None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[READY_KEY] = ready
    app.router.add_get("/healthz", healthz)
    if portal is not None:
        app.router.add_get("/portal", to_portal)
        app.add_subapp("/portal/", build_portal(portal))
    return app
