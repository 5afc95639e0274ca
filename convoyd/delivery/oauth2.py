"""OAuth2 access tokens for endpoints that ask for them: the client-credentials grant (RFC 6749
§4.4), one token per endpoint shared by all its attempts.

The :class:`TokenCache` lives in the daemon, beside the engine, not in the sender workers: an
endpoint's attempts spread over the workers, and one fetched token must serve them all. The
token request itself goes through the engine's sender like a delivery (a POST), so it obeys the
SSRF guard and the endpoint's timeout, and reads at most TOKEN_BODY_LIMIT bytes of the answer.

Failures are values (:class:`TokenFailure`): the attempt that needed the token fails with its
text, which names what the token endpoint did ("token endpoint answered 401") and never carries
the client secret, the token or the response body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

from convoyd.core.model import OAuth2Auth, OAuth2ClientAuth
from convoyd.core.outcome import ErrorKind
from convoyd.core.request import basic_authorization
from convoyd.delivery.config import USER_AGENT, SenderLike
from convoyd.delivery.sender import AttemptReport, OutboundRequest, no_answer

log = logging.getLogger(__name__)

# A token response is a small JSON object; a larger answer is not one.
TOKEN_BODY_LIMIT = 64 * 1024
# The lifetime assumed when the token response has no expires_in (RFC 6749 §5.1 only
# RECOMMENDS it). Short, so a token that does expire earlier fails at most a few minutes of
# attempts' first tries (each then refetches once on the receiver's 401).
DEFAULT_LIFETIME = 300.0
# A longer expires_in is not believed: a revoked token must not be kept for days.
MAX_LIFETIME = 86400.0
# Endpoints with a token cached; deleted and handed-off endpoints are forgotten at once.
MAX_ENTRIES = 65536
# What a bearer token may contain to be sent as a header value: visible ASCII (RFC 6750's
# b64token is stricter; servers that send more than it allows still work as long as it fits).
_TOKEN = re.compile(r"[\x21-\x7e]{1,16384}")
# Error codes of a token error response (RFC 6749 §5.2) worth naming; any other text from the
# server is not repeated (it could echo anything, the secret included).
_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)

# Outcomes of a fetch, as ``observe`` hears them (a metric label: a fixed set).
FETCHED = "fetched"
REFUSED = "refused"  # the token endpoint answered with an error status
UNREACHABLE = "unreachable"  # no answer: network, timeout, blocked
INVALID = "invalid"  # a 2xx that holds no usable token


@dataclass(frozen=True, slots=True)
class TokenFailure:
    """Why there is no token: the attempt's error kind and text, and the fetch's outcome."""

    kind: ErrorKind
    error: str
    outcome: str
    #: convoyd's own failure (a bug while fetching), not the token endpoint's.
    internal: bool = False

    def report(self, duration: float) -> AttemptReport:
        """The report of the attempt that could not be sent for want of a token."""
        return no_answer(self.kind, self.error, duration, internal=self.internal)


def token_request(auth: OAuth2Auth, user_agent: str) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and form body of the client-credentials token request (RFC 6749 §4.4.2)."""
    form = [("grant_type", "client_credentials")]
    if auth.scopes:
        form.append(("scope", " ".join(auth.scopes)))
    if auth.audience:
        form.append(("audience", auth.audience))
    headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Accept", "application/json"),
        ("User-Agent", user_agent),
    ]
    if auth.client_auth is OAuth2ClientAuth.BODY:
        form += [("client_id", auth.client_id), ("client_secret", auth.client_secret)]
    else:
        # RFC 6749 §2.3.1: each of the two form-urlencoded, then HTTP basic.
        value = basic_authorization(quote_plus(auth.client_id), quote_plus(auth.client_secret))
        headers.append(("Authorization", value))
    return headers, urlencode(form).encode("ascii")


def parse_token_response(report: AttemptReport) -> tuple[str, float | None] | TokenFailure:
    """The access token and its expires_in (None when absent) from the token endpoint's
    report, or why it holds none."""
    if report.error_kind is not ErrorKind.NONE or report.status is None:
        where = "blocked" if report.error_kind is ErrorKind.BLOCKED else "unreachable"
        kind = report.error_kind if report.error_kind is not ErrorKind.NONE else ErrorKind.NETWORK
        text = f"token endpoint {where}: {report.error or 'no answer'}"
        return TokenFailure(kind, text, UNREACHABLE, internal=report.internal)
    if not 200 <= report.status <= 299:
        text = f"token endpoint answered {report.status}"
        code = _error_code(report.body)
        return TokenFailure(ErrorKind.NETWORK, f"{text} ({code})" if code else text, REFUSED)
    if report.truncated:
        limit = f"{TOKEN_BODY_LIMIT // 1024} KiB"
        return _invalid(f"token endpoint answered more than {limit}, not a token response")
    doc = _json_object(report.body)
    if doc is None:
        return _invalid("token endpoint answered something other than a JSON object")
    token = doc.get("access_token")
    if not isinstance(token, str) or not token:
        return _invalid("token endpoint answered without an access_token")
    if not _TOKEN.fullmatch(token):
        return _invalid("token endpoint answered an access_token that cannot be sent as a header")
    # token_type is REQUIRED and case-insensitive (§5.1, §7.1); a server that leaves it out
    # issues bearer tokens in practice.
    token_type = doc.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        return _invalid("token endpoint answered a token_type other than bearer")
    return token, _seconds(doc.get("expires_in"))


def refresh_at(fetched_at: float, expires_in: float | None) -> float:
    """When a token fetched at ``fetched_at`` is due to be replaced: shortly before it expires,
    by min(60 s, 10 % of its lifetime), so that an attempt does not reach the receiver with a
    token that expires on the way. No expires_in: DEFAULT_LIFETIME; 0 or less: at once (the
    token serves only the attempts that waited for it)."""
    lifetime = DEFAULT_LIFETIME if expires_in is None else min(expires_in, MAX_LIFETIME)
    if lifetime <= 0:
        return fetched_at
    return fetched_at + lifetime - min(60.0, 0.1 * lifetime)


def config_digest(auth: OAuth2Auth) -> str:
    """A digest of everything that decides which token a fetch gets: a changed secret, scope or
    token URL fetches anew."""
    fields = [
        auth.token_url,
        auth.client_id,
        auth.client_secret,
        list(auth.scopes),
        auth.audience,
        auth.client_auth.value,
    ]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def _invalid(text: str) -> TokenFailure:
    return TokenFailure(ErrorKind.NETWORK, text, INVALID)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return doc if isinstance(doc, dict) else None


def _error_code(body: bytes) -> str:
    doc = _json_object(body)
    code = doc.get("error") if doc is not None else None
    return code if isinstance(code, str) and code in _ERROR_CODES else ""


def _seconds(value: object) -> float | None:
    """expires_in as a number of seconds; a few servers send it as a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return None


@dataclass(eq=False, slots=True)
class _Entry:
    """One endpoint's token, and the fetch in flight for it."""

    auth: OAuth2Auth  # the settings object last seen: most lookups are an identity check
    digest: str
    token: str = ""
    refresh_at: float = 0.0
    fetch: asyncio.Task[str | TokenFailure] | None = None


class TokenCache:
    """Access tokens per endpoint: fetched once, shared, replaced before they expire.

    Concurrent attempts that find no valid token wait for one fetch (single-flight); a failed
    fetch is not cached, so the next attempt (a retry, after the policy's delay) tries again.
    """

    def __init__(
        self,
        sender: SenderLike,
        *,
        user_agent: str = USER_AGENT,
        clock: Callable[[], float] = time.monotonic,
        observe: Callable[[str], None] | None = None,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        """``observe`` hears each fetch's outcome (FETCHED, REFUSED, UNREACHABLE, INVALID)."""
        self._sender = sender
        self._user_agent = user_agent
        self._clock = clock
        self._observe = observe
        self._max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._fetches: set[asyncio.Task[str | TokenFailure]] = set()

    async def token(
        self,
        endpoint_id: str,
        auth: OAuth2Auth,
        timeout: float,  # noqa: ASYNC109 - the token request's own timeout, as a delivery's
    ) -> str | TokenFailure:
        """A valid token for the endpoint, fetched if there is none (or joining the fetch in
        flight); ``timeout`` bounds the token request as the endpoint's bounds a delivery."""
        entry = self._entry(endpoint_id, auth)
        if entry.token and self._clock() < entry.refresh_at:
            return entry.token
        fetch = entry.fetch
        if fetch is None:
            fetch = asyncio.create_task(self._fetch(entry, auth, timeout), name="convoyd-oauth2")
            entry.fetch = fetch
            self._fetches.add(fetch)
            fetch.add_done_callback(self._fetches.discard)
        # Shielded: an attempt cancelled while waiting does not cancel the others' fetch.
        return await asyncio.shield(fetch)

    def invalidate(self, endpoint_id: str, token: str) -> None:
        """The receiver refused ``token`` (401): the next ``token`` call fetches anew. A token
        already replaced is left alone, so that attempts refused together cause one fetch."""
        entry = self._entries.get(endpoint_id)
        if entry is not None and entry.token == token:
            entry.token = ""
            entry.refresh_at = 0.0

    def forget(self, endpoint_ids: Iterable[str]) -> None:
        """Drops the tokens of endpoints deleted or no longer delivered by this node."""
        for endpoint_id in endpoint_ids:
            self._entries.pop(endpoint_id, None)

    async def close(self) -> None:
        """Cancels fetches still in flight (shutdown: their attempts are already gone)."""
        fetches = list(self._fetches)
        for fetch in fetches:
            fetch.cancel()
        await asyncio.gather(*fetches, return_exceptions=True)
        self._entries.clear()

    def _entry(self, endpoint_id: str, auth: OAuth2Auth) -> _Entry:
        entry = self._entries.get(endpoint_id)
        if entry is not None and entry.auth is auth:
            return entry
        digest = config_digest(auth)
        if entry is not None and entry.digest == digest:
            entry.auth = auth  # the same settings in a new object (the endpoint was updated)
            return entry
        # New, or changed settings: a token fetched with the old ones is not used.
        if entry is None and len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        entry = self._entries[endpoint_id] = _Entry(auth=auth, digest=digest)
        return entry

    async def _fetch(self, entry: _Entry, auth: OAuth2Auth, timeout: float) -> str | TokenFailure:  # noqa: ASYNC109 - as token()
        try:
            fetched_at = self._clock()
            headers, body = token_request(auth, self._user_agent)
            # No TLS material: the endpoint's client certificate and CA are for its receiver,
            # not for the authorization server, which the system store vouches for.
            request = OutboundRequest(
                url=auth.token_url,
                headers=headers,
                body=body,
                timeout=timeout,
                body_limit=TOKEN_BODY_LIMIT,
            )
            try:
                result = parse_token_response(await self._sender.send(request))
            except Exception as exc:  # a bug: still a failed attempt, never a lost one
                log.warning("could not fetch an OAuth2 token (%s)", type(exc).__name__)
                text = f"could not fetch the OAuth2 token ({type(exc).__name__})"
                result = TokenFailure(ErrorKind.NETWORK, text, UNREACHABLE, internal=True)
            if isinstance(result, TokenFailure):
                self._observed(result.outcome)
                return result
            token, expires_in = result
            entry.token = token
            entry.refresh_at = refresh_at(fetched_at, expires_in)
            self._observed(FETCHED)
            return token
        finally:
            entry.fetch = None

    def _observed(self, outcome: str) -> None:
        if self._observe is not None:
            self._observe(outcome)
