"""Portal sessions and the rules every request passes: cookie, CSRF, headers, access log.

The link's token arrives once, in /portal/enter?token=..., is exchanged at once for a session
cookie and answered with a 303 to /portal/, so it stays neither in the address bar nor in the
history, and (Referrer-Policy: no-referrer) is never sent on as a Referer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from convoyd.core.model import PortalLink, PortalLinkKind
from convoyd.errors import (
    AlreadyExistsError,
    ConvoydError,
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    ValidationError,
    mapped,
)
from convoyd.portal import context
from convoyd.portal.context import Viewer
from convoyd.portal.templates import Chrome, message_page
from convoyd.service.portal import csrf_matches, csrf_token

access_log = logging.getLogger("convoyd.portal")
log = logging.getLogger(__name__)

COOKIE = "convoyd_portal"
COOKIE_PATH = "/portal"
# Paths served without a session: the token exchange, the page after signing out, and the
# stylesheet and script.
PUBLIC_PATHS = ("/portal/enter", "/portal/signed-out", "/portal/static/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

NOT_FOUND = ("Not found", "There is nothing here, or it is not part of this portal.", "")
# Portal links come from the customer's application (its "Webhooks" page), never from convoyd:
# the way forward is back there.
NEW_LINK = (
    "To continue, go back to the application that sent you here and open its webhooks portal"
    " again: it gives you a new portal link."
)
SESSION_ENDED = (
    "Your session has ended",
    "This portal session has expired, was signed out, or its link was revoked.",
    NEW_LINK,
)
SIGNED_OUT = ("Signed out", "You have signed out of the portal.", NEW_LINK)
LINK_REFUSED = (
    "This link cannot be used",
    "The portal link has already been used, has expired or was revoked.",
    "Most portal links open once. " + NEW_LINK,
)


def _message(what: tuple[str, str, str], chrome: Chrome | None, *, status: int) -> web.Response:
    title, text, hint = what
    return message_page(title, text, chrome, status=status, hint=hint)


def content_security_policy(frame_ancestors: str) -> str:
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        f" form-action 'self'; base-uri 'none'; frame-ancestors {frame_ancestors}"
    )


def _framing(request: web.Request) -> tuple[str, str | None]:
    """(frame-ancestors, X-Frame-Options): only LONG_LIVED sessions may be framed, and only
    by the configured origins."""
    origins = context.services(request).settings.frame_ancestors
    link = request.get(context.LINK)
    if origins and isinstance(link, PortalLink) and link.kind is PortalLinkKind.LONG_LIVED:
        return " ".join(origins), None
    return "'none'", "DENY"


def _secure(request: web.Request, response: web.StreamResponse) -> None:
    ancestors, frame_options = _framing(request)
    headers = response.headers
    headers["Content-Security-Policy"] = content_security_policy(ancestors)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cache-Control"] = "no-store"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if frame_options is not None:
        headers["X-Frame-Options"] = frame_options


def secure(request: web.Request, response: web.StreamResponse) -> None:
    """The security headers, for a handler that streams: they must be set before prepare()
    (headers_middleware sets them after the handler returns, too late for a stream)."""
    _secure(request, response)


# The portal's one table of errors: HTTP status and page title for each domain error (the
# message is the error's own); the two whose text the customer should not see get a fixed page.
PAGE_OF: dict[type[ConvoydError], tuple[int, str]] = {
    ValidationError: (400, "That did not work"),
    PermissionDeniedError: (403, "Not allowed"),
    FailedPreconditionError: (409, "That is not possible now"),
    AlreadyExistsError: (409, "That exists already"),
    ResourceExhaustedError: (429, "Too much at once"),
    UnavailableError: (503, "Not available right now"),
}
_FIXED_PAGES: dict[type[ConvoydError], tuple[tuple[str, str, str], int]] = {
    NotFoundError: (NOT_FOUND, 404),
    UnauthenticatedError: (SESSION_ENDED, 403),
}


def error_page(request: web.Request, exc: ConvoydError) -> web.Response:
    """The page for an error no handler dealt with itself."""
    chrome = context.chrome_of(request)
    fixed = mapped(_FIXED_PAGES, exc, None)
    if fixed is not None:
        what, status = fixed
        return _message(what, chrome if status == 404 else None, status=status)
    status, title = mapped(PAGE_OF, exc, (500, "Something went wrong"))
    return message_page(title, str(exc), chrome, status=status)


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path (never the query: it may hold a token), status and
    link id (never a token or session id)."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        access_log.info(
            "portal request",
            extra={
                "method": request.method,
                "path": request.rel_url.path,
                "status": status,
                "link_id": request.get(context.LINK_ID, "-"),
            },
        )


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every response, error pages for errors."""
    try:
        response = await handler(request)
    except ConvoydError as exc:
        response = error_page(request, exc)
    except web.HTTPNotFound:
        response = _message(NOT_FOUND, context.chrome_of(request), status=404)
    except web.HTTPException as exc:
        _secure(request, exc)
        raise
    except Exception:
        log.exception("portal request failed")
        response = message_page(
            "Something went wrong", "The request failed; try again later.", None, status=500
        )
    _secure(request, response)
    return response


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Finds the live session of the cookie (else the "session ended" page) and checks the
    CSRF token of every POST (else 403)."""
    if request.path.startswith(PUBLIC_PATHS):
        return await handler(request)
    token = request.cookies.get(COOKIE, "")
    try:
        session, link = await context.services(request).links.session(token)
    except UnauthenticatedError:
        response = _message(SESSION_ENDED, None, status=403)
        if token:
            response.del_cookie(COOKIE, path=COOKIE_PATH)
        return response
    who = Viewer(link=link, session=session, csrf=csrf_token(token))
    context.set_viewer(request, who)
    if request.method == "POST":
        form = await request.post()
        given = form.get("csrf")
        if not isinstance(given, str) or not csrf_matches(token, given):
            return message_page(
                "Form expired",
                "The form could not be verified. Go back, reload the page and try again.",
                who.chrome,
                status=403,
            )
    return await handler(request)


async def enter(request: web.Request) -> web.StreamResponse:
    """GET /portal/enter?token=...: the token for a session cookie, then away from this URL."""
    services = context.services(request)
    try:
        opened = await services.links.open(request.query.get("token", ""))
    except UnauthenticatedError:
        return _message(LINK_REFUSED, None, status=403)
    request[context.LINK_ID] = opened.link.id
    request[context.LINK] = opened.link
    response = web.Response(status=303, headers={"Location": "/portal/"})
    response.set_cookie(
        COOKIE,
        opened.token,
        path=COOKIE_PATH,
        max_age=max(1, int(opened.session.expires_at - services.clock())),
        httponly=True,
        secure=services.secure_cookies,
        samesite="Lax",
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    await context.services(request).links.end_session(request.cookies.get(COOKIE, ""))
    response = web.Response(status=303, headers={"Location": "/portal/signed-out"})
    response.del_cookie(COOKIE, path=COOKIE_PATH)
    return response


async def signed_out(request: web.Request) -> web.StreamResponse:
    """Where signing out lands (a page of its own: a reload signs nothing out again)."""
    return _message(SIGNED_OUT, None, status=200)


def session_cookie(request: web.Request) -> str:
    """The session's cookie value: the secret that the form token and results are bound to."""
    return request.cookies.get(COOKIE, "")


def require_manage(request: web.Request) -> Viewer:
    """The viewer, if its link may manage endpoints; PermissionDeniedError (403) if not."""
    who = context.viewer(request)
    if not who.can_manage:
        raise PermissionDeniedError("This portal link can view and retry, not manage endpoints.")
    return who
