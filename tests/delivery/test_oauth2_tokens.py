"""OAuth2 client credentials: the token request, the reading of its answer, the expiry rule and
the token cache (single-flight, expiry, 401 invalidation, changed settings), over a FakeSender
and a clock the test moves."""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import parse_qsl, unquote_plus

import pytest

from convoyd.core.model import OAuth2Auth, OAuth2ClientAuth
from convoyd.core.outcome import ErrorKind
from convoyd.delivery.fake import FakeSender, answer, failure
from convoyd.delivery.oauth2 import (
    DEFAULT_LIFETIME,
    FETCHED,
    INVALID,
    REFUSED,
    TOKEN_BODY_LIMIT,
    UNREACHABLE,
    TokenCache,
    TokenFailure,
    parse_token_response,
    refresh_at,
    token_request,
)
from convoyd.delivery.sender import AttemptReport, OutboundRequest

SECRET = "s3cr:t/+ &x"  # every character RFC 6749 §2.3.1's form encoding changes
AUTH = OAuth2Auth(
    token_url="https://auth.invalid/token",
    client_id="convoyd client",
    client_secret=SECRET,
    scopes=("hooks.write", "hooks.read"),
    audience="https://api.invalid",
)


def granted(value: str = "tok-1", **extra: object) -> AttemptReport:
    """A token endpoint's 200 with access_token ``value`` and ``extra`` fields."""
    return answer(200, body=json.dumps({"access_token": value, **extra}).encode())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the token request -------------------------------------------------------------------


def test_basic_client_authentication_form_encodes_id_and_secret() -> None:
    headers, body = token_request(AUTH, "convoyd/test")
    h = dict(headers)
    assert h["Content-Type"] == "application/x-www-form-urlencoded"
    assert h["Accept"] == "application/json"
    user, _, password = (
        base64.b64decode(h["Authorization"].removeprefix("Basic ")).decode().partition(":")
    )
    assert (user, password) == ("convoyd+client", "s3cr%3At%2F%2B+%26x")
    assert (unquote_plus(user), unquote_plus(password)) == (AUTH.client_id, SECRET)
    assert dict(parse_qsl(body.decode())) == {
        "grant_type": "client_credentials",
        "scope": "hooks.write hooks.read",
        "audience": "https://api.invalid",
    }


def test_body_client_authentication_sends_the_credentials_as_form_fields() -> None:
    auth = OAuth2Auth(
        token_url=AUTH.token_url,
        client_id="c",
        client_secret=SECRET,
        client_auth=OAuth2ClientAuth.BODY,
    )
    headers, body = token_request(auth, "convoyd/test")
    assert "Authorization" not in dict(headers)
    assert dict(parse_qsl(body.decode())) == {
        "grant_type": "client_credentials",
        "client_id": "c",
        "client_secret": SECRET,
    }


# -- reading the answer ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (granted(), ("tok-1", None)),
        (granted(token_type="Bearer", expires_in=3600), ("tok-1", 3600.0)),
        (granted(token_type="bearer", expires_in="120"), ("tok-1", 120.0)),
        (granted(expires_in=True), ("tok-1", None)),  # not a number
        (granted(expires_in="soon"), ("tok-1", None)),
        (
            answer(
                401,
                body=b'{"error": "invalid_client", "error_description": "'
                + SECRET.encode()
                + b'"}',
            ),
            TokenFailure(
                ErrorKind.NETWORK, "token endpoint answered 401 (invalid_client)", REFUSED
            ),
        ),
        (
            answer(400, body=b'{"error": "' + SECRET.encode() + b'"}'),  # no code of RFC 6749
            TokenFailure(ErrorKind.NETWORK, "token endpoint answered 400", REFUSED),
        ),
        (
            answer(503, body=b"<html>down</html>"),
            TokenFailure(ErrorKind.NETWORK, "token endpoint answered 503", REFUSED),
        ),
        (
            failure(ErrorKind.NETWORK, "connection refused"),
            TokenFailure(
                ErrorKind.NETWORK, "token endpoint unreachable: connection refused", UNREACHABLE
            ),
        ),
        (
            failure(ErrorKind.TIMEOUT, "timed out after 5s"),
            TokenFailure(
                ErrorKind.TIMEOUT, "token endpoint unreachable: timed out after 5s", UNREACHABLE
            ),
        ),
        (
            failure(ErrorKind.BLOCKED, "10.0.0.1 is private"),
            TokenFailure(
                ErrorKind.BLOCKED, "token endpoint blocked: 10.0.0.1 is private", UNREACHABLE
            ),
        ),
        (
            answer(200, body=b'{"token_type": "bearer"}'),
            TokenFailure(
                ErrorKind.NETWORK, "token endpoint answered without an access_token", INVALID
            ),
        ),
        (
            granted(""),
            TokenFailure(
                ErrorKind.NETWORK, "token endpoint answered without an access_token", INVALID
            ),
        ),
        (
            granted("two words"),
            TokenFailure(
                ErrorKind.NETWORK,
                "token endpoint answered an access_token that cannot be sent as a header",
                INVALID,
            ),
        ),
        (
            granted(token_type="mac"),
            TokenFailure(
                ErrorKind.NETWORK, "token endpoint answered a token_type other than bearer", INVALID
            ),
        ),
        (
            answer(200, body=b"access_token=tok"),
            TokenFailure(
                ErrorKind.NETWORK,
                "token endpoint answered something other than a JSON object",
                INVALID,
            ),
        ),
        (
            answer(200, body=b'["tok"]'),
            TokenFailure(
                ErrorKind.NETWORK,
                "token endpoint answered something other than a JSON object",
                INVALID,
            ),
        ),
    ],
)
def test_token_responses(
    report: AttemptReport, expected: tuple[str, float | None] | TokenFailure
) -> None:
    assert parse_token_response(report) == expected


def test_a_truncated_token_response_is_not_read_as_one() -> None:
    big = AttemptReport(
        status=200,
        headers=(),
        body=b'{"access_token": "tok"',
        truncated=True,
        error_kind=ErrorKind.NONE,
        error="",
        remote_address="127.0.0.1",
        duration=0.0,
        retry_after=None,
    )
    result = parse_token_response(big)
    assert isinstance(result, TokenFailure)
    assert result.error == "token endpoint answered more than 64 KiB, not a token response"


@pytest.mark.parametrize(
    ("expires_in", "due"),
    [
        (3600.0, 3600 - 60),  # the margin is at most a minute
        (100.0, 90.0),  # and at most a tenth of the lifetime
        (1.0, 0.9),
        (None, DEFAULT_LIFETIME - 30),  # no expires_in: five minutes, the same margin
        (0.0, 0.0),  # expired on arrival: serves the attempts that waited for it, no more
        (-5.0, 0.0),
        (1e9, 86400 - 60),  # a lifetime of years is not believed
    ],
)
def test_a_token_is_replaced_shortly_before_it_expires(
    expires_in: float | None, due: float
) -> None:
    assert refresh_at(0.0, expires_in) == pytest.approx(due)


# -- the cache ---------------------------------------------------------------------------


async def test_concurrent_attempts_share_one_fetch() -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow_grant(request: OutboundRequest) -> AttemptReport:
        arrived.set()
        await release.wait()
        return granted()

    sender = FakeSender([slow_grant])
    cache = TokenCache(sender, clock=Clock())
    waiting = [asyncio.create_task(cache.token("ep_1", AUTH, 5.0)) for _ in range(5)]
    await arrived.wait()  # the five asked before the one fetch reached the token server
    release.set()
    assert await asyncio.gather(*waiting) == ["tok-1"] * 5
    assert len(sender.requests) == 1
    (request,) = sender.requests
    assert request.url == AUTH.token_url
    assert request.body_limit == TOKEN_BODY_LIMIT
    assert request.timeout == 5.0
    assert request.tls is None


async def test_a_token_is_used_until_its_margin_then_fetched_again() -> None:
    clock = Clock()
    outcomes: list[str] = []
    sender = FakeSender([granted("tok-1", expires_in=100), granted("tok-2", expires_in=100)])
    cache = TokenCache(sender, clock=clock, observe=outcomes.append)
    assert await cache.token("ep_1", AUTH, 5.0) == "tok-1"
    clock.now += 89.9
    assert await cache.token("ep_1", AUTH, 5.0) == "tok-1"
    clock.now += 0.1  # 90 s: 10 % before its end
    assert await cache.token("ep_1", AUTH, 5.0) == "tok-2"
    assert len(sender.requests) == 2
    assert outcomes == [FETCHED, FETCHED]


async def test_a_failed_fetch_is_shared_but_not_kept() -> None:
    outcomes: list[str] = []
    sender = FakeSender([answer(401, body=b'{"error": "invalid_client"}'), granted()])
    cache = TokenCache(sender, clock=Clock(), observe=outcomes.append)
    first, second = await asyncio.gather(
        cache.token("ep_1", AUTH, 5.0), cache.token("ep_1", AUTH, 5.0)
    )
    assert first == second
    assert isinstance(first, TokenFailure)
    assert first.error == "token endpoint answered 401 (invalid_client)"
    assert SECRET not in first.error
    report = first.report(0.25)
    assert (report.status, report.error_kind, report.internal) == (None, ErrorKind.NETWORK, False)
    assert await cache.token("ep_1", AUTH, 5.0) == "tok-1"  # the next attempt tries again
    assert outcomes == [REFUSED, FETCHED]


async def test_a_refused_token_is_fetched_again_once_for_attempts_refused_together() -> None:
    sender = FakeSender([granted("tok-1", expires_in=3600), granted("tok-2", expires_in=3600)])
    cache = TokenCache(sender, clock=Clock())
    assert await cache.token("ep_1", AUTH, 5.0) == "tok-1"
    cache.invalidate("ep_1", "tok-1")  # the receiver answered 401 for it
    assert await cache.token("ep_1", AUTH, 5.0) == "tok-2"
    cache.invalidate("ep_1", "tok-1")  # a second attempt refused with the old token
    assert await cache.token("ep_1", AUTH, 5.0) == "tok-2"
    assert len(sender.requests) == 2


async def test_changed_settings_fetch_anew_the_same_settings_do_not() -> None:
    sender = FakeSender([granted("tok-1", expires_in=3600), granted("tok-2", expires_in=3600)])
    cache = TokenCache(sender, clock=Clock())
    assert await cache.token("ep_1", AUTH, 5.0) == "tok-1"
    same = OAuth2Auth(**{f: getattr(AUTH, f) for f in AUTH.__slots__})  # an updated endpoint
    assert same is not AUTH
    assert await cache.token("ep_1", same, 5.0) == "tok-1"
    rotated = OAuth2Auth(
        **{**{f: getattr(AUTH, f) for f in AUTH.__slots__}, "client_secret": "new"}
    )
    assert await cache.token("ep_1", rotated, 5.0) == "tok-2"
    assert len(sender.requests) == 2


async def test_endpoints_have_tokens_of_their_own_and_forgotten_ones_are_fetched_again() -> None:
    sender = FakeSender(
        [granted("a", expires_in=3600), granted("b", expires_in=3600), granted("c")]
    )
    cache = TokenCache(sender, clock=Clock())
    assert await cache.token("ep_1", AUTH, 5.0) == "a"
    assert await cache.token("ep_2", AUTH, 5.0) == "b"
    cache.forget(["ep_1"])
    assert await cache.token("ep_2", AUTH, 5.0) == "b"
    assert await cache.token("ep_1", AUTH, 5.0) == "c"


async def test_a_waiter_cancelled_does_not_cancel_the_others_fetch_and_close_ends_it() -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow_grant(request: OutboundRequest) -> AttemptReport:
        arrived.set()
        await release.wait()
        return granted()

    cache = TokenCache(FakeSender([slow_grant, slow_grant]), clock=Clock())
    first = asyncio.create_task(cache.token("ep_1", AUTH, 5.0))
    second = asyncio.create_task(cache.token("ep_1", AUTH, 5.0))
    await arrived.wait()
    first.cancel()
    release.set()
    assert await second == "tok-1"
    with pytest.raises(asyncio.CancelledError):
        await first

    arrived.clear()
    release.clear()
    hanging = asyncio.create_task(cache.token("ep_2", AUTH, 5.0))
    await arrived.wait()
    await cache.close()  # shutdown: the fetch is cancelled, its waiter with it
    with pytest.raises(asyncio.CancelledError):
        await hanging


async def test_a_sender_that_raises_is_a_failed_fetch_not_an_exception() -> None:
    def broken(request: OutboundRequest) -> AttemptReport:
        raise RuntimeError(SECRET)

    cache = TokenCache(FakeSender([broken]), clock=Clock())
    result = await cache.token("ep_1", AUTH, 5.0)
    assert isinstance(result, TokenFailure)
    assert result.internal
    assert result.error == "could not fetch the OAuth2 token (RuntimeError)"
