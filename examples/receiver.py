"""A convoyd webhook receiver: verifies the signature, answers 204, ignores redeliveries.

In a clone of convoyd, once `make run` has made .venv (convoyd and aiohttp are in it):
  CONVOYD_WEBHOOK_SECRETS="whsec_old,whsec_new" .venv/bin/python examples/receiver.py
Elsewhere, install convoyd from its clone first (`pip install /path/to/convoyd`; it is not on
PyPI). HOST and PORT say where it listens (default 127.0.0.1:8000), at the path /webhooks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from aiohttp import web

from convoyd import webhooks

REMEMBERED_IDS = 100_000  # in memory only: keep processed webhook-ids in your database instead


def handle(event: Any) -> None:
    print("verified and received", event, flush=True)  # your business logic goes here


def make_app(secrets: list[str], process: Callable[[Any], None] = handle) -> web.Application:
    seen: dict[str, None] = {}  # webhook-ids already processed, oldest first

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()  # the raw bytes: never re-serialised JSON
        try:
            # Passes when ANY secret matches: list the old and the new one during a rotation.
            webhooks.verify(body, request.headers, secrets)
        except webhooks.WebhookVerificationError:
            return web.Response(status=400)
        msg_id = request.headers["webhook-id"]
        if msg_id not in seen:  # delivery is at least once: a retry repeats the webhook-id
            process(json.loads(body))
            seen[msg_id] = None
            if len(seen) > REMEMBERED_IDS:
                del seen[next(iter(seen))]
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhooks", receive)
    return app


if __name__ == "__main__":
    listed = os.environ.get("CONVOYD_WEBHOOK_SECRETS", "")
    secrets = [s.strip() for s in listed.split(",") if s.strip()]
    if not secrets:
        raise SystemExit("set CONVOYD_WEBHOOK_SECRETS to the endpoint's signing secret(s)")
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    web.run_app(make_app(secrets), host=host, port=port)
