"""What a form did, shown once on the page it redirects to (post/redirect/get).

Every POST answers 303 See Other; its result travels in a short-lived cookie, signed with a key
derived from the session's own cookie secret, so any node of a cluster checks it (no shared key,
no table) and it is worth nothing in another session. The cookie carries only text that is not
secret and, for a new signing secret, that secret's id: the page it goes to reads the value
through the same service call as Reveal secret, and only for a viewer who may manage the
endpoint. The page that shows the result deletes the cookie, so a reload shows the page alone
and repeats nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from aiohttp import web

from convoyd.portal.context import services
from convoyd.portal.security import COOKIE_PATH, Handler, session_cookie
from convoyd.portal.templates import Html, link, notice, render

COOKIE = "convoyd_portal_flash"
#: Seconds a result waits for its page (the redirect follows at once).
LIFETIME = 120.0
MAX_TEXT = 600
_CONTEXT = b"convoyd portal flash v1\x00"
_TAKEN: web.RequestKey[bool] = web.RequestKey("portal_flash_taken", bool)


@dataclass(frozen=True, slots=True, kw_only=True)
class Flash:
    """One result: its words, tone (ok, warn, error), the path of the page that shows it, a
    link to follow, and the ids of signing secrets that page shows the value of once."""

    text: str
    path: str
    kind: str = "ok"
    href: str = ""
    href_text: str = ""
    secret_ids: tuple[str, ...] = ()
    #: The secret is new (made by this form), not one of those revealed.
    new_secret: bool = False

    def notice(self) -> Html:
        more = Html("")
        if self.href:
            more = render(" {a}", a=link(self.href, self.href_text or "Open"))
        return notice(render("{t}{m}", t=self.text, m=more), self.kind)


def _mac(session: str, payload: bytes) -> str:
    digest = hmac.new(session.encode(), _CONTEXT + payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _encode(flash: Flash, expires: float, session: str) -> str:
    body = {
        "t": flash.text[:MAX_TEXT],
        "p": flash.path,
        "k": flash.kind,
        "h": flash.href,
        "ht": flash.href_text,
        "s": list(flash.secret_ids),
        "n": flash.new_secret,
        "x": expires,
    }
    payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode())
    return payload.decode().rstrip("=") + "." + _mac(session, payload.rstrip(b"="))


def _decode(value: str, session: str, now: float) -> Flash | None:
    payload, _, mac = value.partition(".")
    if not payload or not hmac.compare_digest(_mac(session, payload.encode()), mac):
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if float(body["x"]) < now:
            return None
        return Flash(
            text=str(body["t"]),
            path=str(body["p"]),
            kind=str(body["k"]),
            href=str(body["h"]),
            href_text=str(body["ht"]),
            secret_ids=tuple(str(s) for s in body["s"]),
            new_secret=bool(body["n"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None


def redirect(request: web.Request, flash: Flash) -> web.Response:
    """303 See Other to ``flash.path``, with the result to show there."""
    svc = services(request)
    response = web.Response(status=303, headers={"Location": flash.path})
    value = _encode(flash, svc.clock() + LIFETIME, session_cookie(request))
    response.set_cookie(
        COOKIE,
        value,
        path=COOKIE_PATH,
        max_age=int(LIFETIME),
        httponly=True,
        secure=svc.secure_cookies,
        samesite="Lax",
    )
    return response


def take(request: web.Request) -> Flash | None:
    """The result waiting for this page, if any (then gone: the response deletes it)."""
    value = request.cookies.get(COOKIE, "")
    if not value or request.headers.get("Sec-Fetch-Mode", "navigate") != "navigate":
        # Only a page the browser goes to shows it: a script's fetch of the same page (the
        # live refresh, perhaps racing the redirect) must not use it up unseen.
        return None
    found = _decode(value, session_cookie(request), services(request).clock())
    if found is not None and found.path.partition("?")[0] != request.path:
        return None  # another page's: it waits for that page (or expires)
    request[_TAKEN] = True
    return found


def shown(request: web.Request) -> Html:
    """The notice of the result waiting for this page, or nothing."""
    found = take(request)
    return found.notice() if found is not None else Html("")


@web.middleware
async def flash_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Deletes the result cookie once a page has shown it (or found it spoilt)."""
    response = await handler(request)
    if request.get(_TAKEN) and not response.prepared:
        response.del_cookie(COOKIE, path=COOKIE_PATH)
    return response
