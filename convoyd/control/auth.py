"""Control-plane authentication: bearer tokens in gRPC metadata, known only by their hashes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import random
import secrets
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from convoyd.core.ids import new_id
from convoyd.store.base import ApiToken, Store

log = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 - a file name, not a password
TOKEN_PREFIX = "cvd_"  # noqa: S105 - a prefix that makes leaked tokens greppable
# Services any caller may use: load balancers and systemd probes carry no token.
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def hash_token(token: str) -> bytes:
    # Tokens carry 256 random bits, so a plain SHA-256 is as strong as a slow KDF here.
    return hashlib.sha256(token.encode()).digest()


class TokenSet:
    """The hashes of the tokens that are currently valid."""

    def __init__(self, hashes: Iterable[bytes] = ()) -> None:
        self._hashes = list(hashes)

    def add(self, token_hash: bytes) -> None:
        self._hashes.append(token_hash)

    def replace(self, hashes: Iterable[bytes]) -> None:
        """The valid tokens as the store has them now (a cluster node refreshes them, so a
        token one node made works on all)."""
        self._hashes = list(hashes)

    def check(self, token: str) -> bool:
        candidate = hash_token(token)
        # Compare against every hash without stopping early: the time taken says nothing
        # about which token (if any) came close.
        found = False
        for known in self._hashes:
            found |= hmac.compare_digest(candidate, known)
        return found


async def refresh_tokens(store: Store, tokens: TokenSet) -> None:
    tokens.replace(t.token_hash for t in await store.list_api_tokens() if t.revoked_at is None)


async def bootstrap_tokens(
    store: Store, data_dir: Path, *, now: float, rng: random.Random
) -> TokenSet:
    """Loads valid tokens; on first start writes a new admin token to <data_dir>/admin.token."""
    tokens = TokenSet(t.token_hash for t in await store.list_api_tokens() if t.revoked_at is None)
    path = data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        existing = path.read_text().strip()
        if existing and not tokens.check(existing):
            # The file survived a fresh database (e.g. restored data dir): keep it valid.
            await _register(store, tokens, existing, now=now, rng=rng)
        return tokens
    if await store.list_api_tokens():
        return tokens  # the operator removed the file on purpose; don't mint a new one
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    await _register(store, tokens, token, now=now, rng=rng)
    log.info("wrote a new admin token to %s", path)
    return tokens


async def _register(
    store: Store, tokens: TokenSet, token: str, *, now: float, rng: random.Random
) -> None:
    token_hash = hash_token(token)
    await store.insert_api_token(
        ApiToken(id=new_id("tok", now, rng), name="admin", token_hash=token_hash, created_at=now)
    )
    tokens.add(token_hash)


def bearer(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every RPC without a valid bearer token, unary and streaming alike."""

    def __init__(self, tokens: TokenSet) -> None:
        self._tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        method = handler_call_details.method
        if method.startswith(OPEN_SERVICES):
            return await continuation(handler_call_details)
        token = bearer(handler_call_details.invocation_metadata)
        if token is not None and self._tokens.check(token):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        message = (
            "missing bearer token (metadata 'authorization: Bearer <token>')"
            if token is None
            else "invalid bearer token"
        )
        return _refusal(handler, message)


def _refusal(handler: Any, message: str) -> Any:
    """A handler that answers UNAUTHENTICATED without reading the request.

    grpc.aio receives (and deserialises) a unary request in full before its handler runs, up
    to the receive limit, so a refusal of the method's own shape would let any caller make the
    daemon hold and parse a message of that size. A request-streaming handler that never reads
    its stream leaves the message unread and the status goes out at once; the wire format is
    the same, so callers cannot tell. The response keeps the method's shape and serializer."""

    async def unary(requests: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def stream(requests: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator

    serializer = handler.response_serializer
    if handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(stream, None, serializer)
    return grpc.stream_unary_rpc_method_handler(unary, None, serializer)
