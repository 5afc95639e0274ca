"""The HTTP listener's app: a page at / that says what this is, /healthz, and the web portal
under /portal/ when it is given."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from convoyd.portal.context import PortalServices
from convoyd.portal.routes import build_portal

Ready = Callable[[], bool]
READY_KEY: web.AppKey[Ready] = web.AppKey("ready")
PORTAL_KEY: web.AppKey[bool] = web.AppKey("portal_mounted", bool)


async def healthz(request: web.Request) -> web.Response:
    if request.app[READY_KEY]():
        return web.json_response({"status": "serving"})
    return web.json_response({"status": "not serving"}, status=503)


_ROOT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>convoyd</title>
{style}
</head>
<body class="root-page">
<main class="container"><div class="message">
<h1>convoyd</h1>
<p>This is convoyd, a webhook delivery daemon. Applications hand it events over gRPC; it signs
them and delivers them to their customers' endpoints.</p>
<ul class="root-links">
<li><a href="/healthz">/healthz</a>: whether this node is serving (200) or not (503)</li>
{metrics}{portal}
</ul>
<p class="muted">The documentation comes with convoyd's source: README.md, and docs/operations.md
for running it{portal_doc}.</p>
</div></main>
</body>
</html>
"""
ROOT_CSP = "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'"


def _has_route(app: web.Application, path: str) -> bool:
    return any(r.canonical == path for r in app.router.resources())


async def root(request: web.Request) -> web.Response:
    """What this listener is and where its health, metrics and portal are (no secrets)."""
    portal = request.app[PORTAL_KEY]
    page = _ROOT.format(
        style='<link rel="stylesheet" href="/portal/static/portal.css">' if portal else "",
        metrics='<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>'
        if _has_route(request.app, "/metrics")
        else "",
        portal="<li>/portal/: the webhook portal, opened with a portal link from the"
        " application that uses convoyd</li>"
        if portal
        else "",
        portal_doc=", docs/portal.md for the portal" if portal else "",
    )
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": ROOT_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )


async def to_portal(request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": "/portal/"})


def build_app(ready: Callable[[], bool], portal: PortalServices | None = None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[READY_KEY] = ready
    app[PORTAL_KEY] = portal is not None
    app.router.add_get("/", root)
    app.router.add_get("/healthz", healthz)
    if portal is not None:
        app.router.add_get("/portal", to_portal)
        app.add_subapp("/portal/", build_portal(portal))
    return app
