"""GET /metrics: the Prometheus text exposition of convoyd's registry, on an aiohttp app."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from convoyd.metrics import Metrics

METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics")


async def metrics_page(request: web.Request) -> web.Response:
    body = await request.app[METRICS_KEY].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_metrics_route(app: web.Application, metrics: Metrics) -> None:
    """Mounts GET /metrics on ``app``."""
    app[METRICS_KEY] = metrics
    app.router.add_get("/metrics", metrics_page)
