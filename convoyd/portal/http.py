"""The HTTP listener: /healthz now; the portal and /metrics mount here too."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

Ready = Callable[[], bool]
READY_KEY: web.AppKey[Ready] = web.AppKey("ready")


async def healthz(request: web.Request) -> web.Response:
    if request.app[READY_KEY]():
        return web.json_response({"status": "serving"})
    return web.json_response({"status": "not serving"}, status=503)


def build_app(ready: Callable[[], bool]) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[READY_KEY] = ready
    app.router.add_get("/healthz", healthz)
    return app
