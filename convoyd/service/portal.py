"""Portal links and sessions: minting, opening, revoking; tokens are kept only as hashes.

A link's token (``cvdp_`` + 256 random bits) is shown once, inside the link's URL. Opening
the link exchanges it for a session whose cookie value is another 256-bit secret; both are
stored as SHA-256 hashes, so a copy of the database opens nothing. Sessions live server-side,
so revoking a link ends every session it opened at once.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import random
import re
import secrets
from collections.abc import Callable, Sequence

from convoyd.core import ids
from convoyd.core.model import Page, PortalLink, PortalLinkKind, PortalSession
from convoyd.core.validation import filter_violations, id_problem, require_id
from convoyd.errors import FieldViolation, NotFoundError, UnauthenticatedError, ValidationError
from convoyd.service.listing import page_of
from convoyd.store.base import Store

Clock = Callable[[], float]

# Prefixes make leaked tokens recognisable (secret scanners, logs); they are not secrets.
LINK_TOKEN_PREFIX = "cvdp_"  # noqa: S105 - a prefix, not a secret
SESSION_TOKEN_PREFIX = "cvds_"  # noqa: S105 - a prefix, not a secret
DEFAULT_LIFETIME = {
    PortalLinkKind.ONE_TIME: 3600.0,
    PortalLinkKind.LONG_LIVED: 30 * 86400.0,
}
MAX_LIFETIME = 365 * 86400.0
DEFAULT_SESSION_LIFETIME = 12 * 3600.0  # seconds a portal session lasts
MAX_NAME_LENGTH = 200
MAX_ENDPOINT_IDS = 100
# The same words for every dead link: whether it never existed, was used, expired or was
# revoked is nobody's business who holds only the token.
DEAD_LINK = "this portal link is not valid any more (used, expired or revoked)"
DEAD_SESSION = "the portal session has ended"
_CSRF_CONTEXT = b"convoyd portal csrf v1"
_OWNER_ID = re.compile(r"[\x21-\x7e]{1,128}")  # as endpoints' owner_id


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_token(session_token: str) -> str:
    """The session's form token: derived from the cookie secret, so nothing more is stored,
    and useless without the cookie (which scripts on other origins cannot read)."""
    digest = hmac.new(session_token.encode(), _CSRF_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def csrf_matches(session_token: str, given: str) -> bool:
    return hmac.compare_digest(csrf_token(session_token).encode(), given.encode())


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PortalLinkRequest:
    """What CreatePortalLink asks for; ``kind`` None is ONE_TIME, ``lifetime`` None the
    kind's default."""

    name: str = ""
    owner_id: str = ""
    endpoint_ids: Sequence[str] = ()
    all_owners: bool = False
    can_manage_endpoints: bool = False
    kind: PortalLinkKind | None = None
    lifetime: float | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OpenedSession:
    """A session just opened: the cookie value goes to the browser, then is forgotten."""

    link: PortalLink
    session: PortalSession
    token: str


def _violations(request: PortalLinkRequest) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    scopes = [bool(request.owner_id), bool(request.endpoint_ids), request.all_owners]
    if sum(scopes) != 1:
        out.append(
            FieldViolation("owner_id", "give exactly one of owner_id, endpoint_ids and all_owners")
        )
    if request.owner_id and not _OWNER_ID.fullmatch(request.owner_id):
        out.append(FieldViolation("owner_id", "must be 1-128 printable characters without spaces"))
    if len(request.endpoint_ids) > MAX_ENDPOINT_IDS:
        out.append(FieldViolation("endpoint_ids", f"has more than {MAX_ENDPOINT_IDS} entries"))
    seen: set[str] = set()
    for i, endpoint_id in enumerate(request.endpoint_ids[:MAX_ENDPOINT_IDS]):
        if (problem := id_problem("ep", endpoint_id)) is not None:
            out.append(FieldViolation(f"endpoint_ids[{i}]", problem))
        elif endpoint_id in seen:
            out.append(FieldViolation(f"endpoint_ids[{i}]", "is given twice"))
        seen.add(endpoint_id)
    if len(request.name) > MAX_NAME_LENGTH:
        out.append(FieldViolation("name", f"is longer than {MAX_NAME_LENGTH} characters"))
    elif any(ord(c) < 32 or ord(c) == 127 for c in request.name):
        out.append(FieldViolation("name", "must not contain control characters"))
    if request.lifetime is not None and not 1 <= request.lifetime <= MAX_LIFETIME:
        out.append(FieldViolation("lifetime", "must be between 1 second and 365 days"))
    return out


class PortalManager:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        rng: random.Random,
        session_lifetime: float = DEFAULT_SESSION_LIFETIME,
    ) -> None:
        self._store = store
        self._clock = clock
        self._rng = rng
        self.session_lifetime = session_lifetime

    async def create(self, request: PortalLinkRequest) -> tuple[PortalLink, str]:
        """The new link and its token (shown to the caller once, never stored)."""
        violations = _violations(request)
        if violations:
            raise ValidationError(violations)
        for endpoint_id in request.endpoint_ids:
            await self._store.get_endpoint(endpoint_id)  # NotFoundError names it
        kind = request.kind or PortalLinkKind.ONE_TIME
        lifetime = DEFAULT_LIFETIME[kind] if request.lifetime is None else request.lifetime
        now = self._clock()
        token = LINK_TOKEN_PREFIX + secrets.token_urlsafe(32)
        link = PortalLink(
            id=ids.new_id("pl", now, self._rng),
            name=request.name,
            owner_id=request.owner_id,
            endpoint_ids=tuple(request.endpoint_ids),
            all_owners=request.all_owners,
            can_manage_endpoints=request.can_manage_endpoints,
            kind=kind,
            created_at=now,
            expires_at=now + lifetime,
        )
        await self._store.insert_portal_link(link, token_hash(token))
        return link, token

    async def get(self, link_id: str) -> PortalLink:
        require_id("pl", link_id, "portal_link_id")
        return await self._store.get_portal_link(link_id)

    async def list(
        self,
        *,
        owner_id: str = "",
        show_inactive: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[PortalLink]:
        filter_violations(owner_ids=[("owner_id", owner_id)])
        live_at = None if show_inactive else self._clock()
        return await page_of(
            ("portal_links", owner_id, show_inactive),
            page_size,
            page_token,
            lambda after, limit: self._store.list_portal_links(
                owner_id=owner_id, live_at=live_at, before_id=after, limit=limit
            ),
        )

    async def revoke(self, link_id: str) -> PortalLink:
        """Ends the link and every session opened with it; revoking again changes nothing."""
        require_id("pl", link_id, "portal_link_id")
        now = self._clock()

        def change(link: PortalLink) -> PortalLink:
            if link.revoked_at is not None:
                return link
            return dataclasses.replace(link, revoked_at=now)

        return await self._store.modify_portal_link(link_id, change)

    async def open(self, token: str) -> OpenedSession:
        """Exchanges a link's token for a new session; UnauthenticatedError when the link is
        unknown, revoked, expired, or a ONE_TIME link already used."""
        if not token.startswith(LINK_TOKEN_PREFIX) or len(token) > 100:
            raise UnauthenticatedError(DEAD_LINK)
        now = self._clock()
        session_token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)

        def open_(link: PortalLink) -> tuple[PortalLink, PortalSession]:
            if not link.is_live(now):
                raise UnauthenticatedError(DEAD_LINK)
            if link.kind is PortalLinkKind.ONE_TIME:
                if link.used_at is not None:
                    raise UnauthenticatedError(DEAD_LINK)
                link = dataclasses.replace(link, used_at=now)
            session = PortalSession(
                id=ids.new_id("ps", now, self._rng),
                link_id=link.id,
                created_at=now,
                expires_at=min(link.expires_at, now + self.session_lifetime),
            )
            return link, session

        try:
            link, session = await self._store.open_portal_session(
                token_hash(token), token_hash(session_token), open_
            )
        except NotFoundError:
            raise UnauthenticatedError(DEAD_LINK) from None
        return OpenedSession(link=link, session=session, token=session_token)

    async def session(self, session_token: str) -> tuple[PortalSession, PortalLink]:
        """The live session with this cookie value and its link; UnauthenticatedError when
        there is none (unknown, expired, signed out, or its link revoked or expired)."""
        if not session_token.startswith(SESSION_TOKEN_PREFIX) or len(session_token) > 100:
            raise UnauthenticatedError(DEAD_SESSION)
        try:
            session, link = await self._store.get_portal_session(token_hash(session_token))
        except NotFoundError:
            raise UnauthenticatedError(DEAD_SESSION) from None
        now = self._clock()
        if not session.is_live(now) or link.revoked_at is not None:
            raise UnauthenticatedError(DEAD_SESSION)
        return session, link

    async def end_session(self, session_token: str) -> None:
        await self._store.end_portal_session(token_hash(session_token), now=self._clock())
