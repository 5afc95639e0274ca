"""Endpoint management as the control plane and the portal both see it: rules, then the store."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from convoyd.core import signing, states
from convoyd.core.addresses import IPNetwork
from convoyd.core.ids import new_id
from convoyd.core.model import (
    ApiKeyAuth,
    BasicAuth,
    Endpoint,
    EndpointAuth,
    EndpointSpec,
    EndpointStatus,
    EndpointStatusChange,
    EndpointTls,
    FifoQueue,
    OAuth2Auth,
    Ordering,
    Page,
    Secret,
)
from convoyd.core.request import is_placeholder, keep_hidden_values
from convoyd.core.validation import (
    Limits,
    filter_violations,
    require_id,
    validate_endpoint_spec,
    validate_secret,
)
from convoyd.errors import FieldViolation, ResourceExhaustedError, ValidationError
from convoyd.service.endpoint_warnings import endpoint_warnings
from convoyd.service.feed import WorkFeed
from convoyd.service.listing import page_of
from convoyd.store.base import Guard, Store
from convoyd.tls_material import certificate_not_after, key_matches_certificate, tls_violations

log = logging.getLogger(__name__)
Clock = Callable[[], float]

# Spec fields an update may replace, by their name in the API.
UPDATABLE_FIELDS = frozenset(
    {
        "name",
        "description",
        "url",
        "owner_id",
        "event_types",
        "http_timeout",
        "rate_limit",
        "rate_limit_duration",
        "retry_policy",
        "signature",
        "auth",
        "headers",
        "content_type",
        "max_concurrency",
        "tls",
        # Read when a delivery starts: a change applies from the next one that starts, and
        # attempts already in flight finish as they are.
        "ordering",
        # Read by each attempt: applies from the next one.
        "send_trace_context",
    }
)

MAX_LIVE_SECRETS = 10
DEFAULT_OLD_SECRET_LIFETIME = 24 * 3600.0
MAX_OLD_SECRET_LIFETIME = 7 * 86400.0


def _keep_masked_auth(
    auth: EndpointAuth | None, stored: EndpointAuth | None
) -> EndpointAuth | None:
    """A read-modify-write sends the masked write-only value back: it keeps the stored one when
    the method and what the value belongs to are the same (the API key's header, the basic
    username, the OAuth2 token URL and client id). Anything else needs its real value, and
    validation says so: a masked secret must not follow a changed token URL to another host."""
    if isinstance(auth, ApiKeyAuth) and isinstance(stored, ApiKeyAuth):
        if is_placeholder(auth.header_value) and auth.header_name.lower() == (
            stored.header_name.lower()
        ):
            return dataclasses.replace(auth, header_value=stored.header_value)
    elif isinstance(auth, BasicAuth) and isinstance(stored, BasicAuth):
        if is_placeholder(auth.password) and auth.username == stored.username:
            return dataclasses.replace(auth, password=stored.password)
    elif isinstance(auth, OAuth2Auth) and isinstance(stored, OAuth2Auth):
        same_client = (auth.token_url, auth.client_id) == (stored.token_url, stored.client_id)
        if is_placeholder(auth.client_secret) and same_client:
            return dataclasses.replace(auth, client_secret=stored.client_secret)
    return auth


def _keep_masked_key(tls: EndpointTls | None, stored: EndpointTls | None) -> EndpointTls | None:
    """The masked client key sent back keeps the stored key for the same certificate, or for a
    new one the stored key belongs to (a renewal with the same key pair)."""
    if (
        tls is None
        or stored is None
        or not stored.client_key_pem
        or not tls.client_certificate_pem
        or not is_placeholder(tls.client_key_pem)
    ):
        return tls
    kept = dataclasses.replace(tls, client_key_pem=stored.client_key_pem)
    if (
        tls.client_certificate_pem != stored.client_certificate_pem
        and key_matches_certificate(kept) is False
    ):
        raise ValidationError.single(
            "tls.client_key_pem",
            "is the masked placeholder, and the stored key does not belong to the new"
            " client_certificate_pem: send the new certificate's key",
        )
    return kept


def _with_not_after(spec: EndpointSpec) -> EndpointSpec:
    """The client certificate's expiry, always read from the certificate itself; TLS settings
    with nothing set become None, so that None alone means "no TLS settings"."""
    tls = spec.tls
    if tls is None:
        return spec
    if not (tls.client_certificate_pem or tls.client_key_pem or tls.ca_pem):
        return dataclasses.replace(spec, tls=None)
    not_after = certificate_not_after(tls.client_certificate_pem)
    return dataclasses.replace(
        spec, tls=dataclasses.replace(tls, client_certificate_not_after=not_after)
    )


class EndpointManager:
    def __init__(
        self,
        store: Store,
        feed: WorkFeed,
        *,
        clock: Clock,
        rng: random.Random,
        limits: Limits | None = None,
        allowed: Callable[[], Sequence[IPNetwork]] = tuple,
    ) -> None:
        """``allowed``: the address guard's allow-list in force (delivery.allow_cidrs, which a
        reload may change), read for each endpoint's warnings."""
        self._store = store
        self._feed = feed
        self._clock = clock
        self._rng = rng
        self.limits = limits or Limits()
        self._allowed = allowed

    def warnings(self, endpoint: Endpoint) -> list[str]:
        """Advice about ``endpoint`` as configured (Endpoint.warnings), under the allow-list
        in force now."""
        return endpoint_warnings(endpoint.spec, self._allowed())

    def notify_changed(
        self, endpoint: Endpoint, change: EndpointStatusChange | None = None
    ) -> Endpoint:
        """Puts a committed change on the feed: the engine and the watchers follow along."""
        self._feed.endpoints_changed([endpoint])
        if change is not None:
            self._feed.committed([change])
        return endpoint

    def _check_endpoint_id(self, endpoint_id: str, field: str = "endpoint_id") -> None:
        require_id("ep", endpoint_id, field)

    def _validated(self, spec: EndpointSpec, *, tls_changed: bool) -> EndpointSpec:
        """``spec`` checked whole (with its TLS PEM when that changed, so an unchanged
        certificate is not parsed again), every bad field named at once; with the client
        certificate's expiry read from it."""
        found: list[FieldViolation] = []
        try:
            validate_endpoint_spec(spec, self.limits)
        except ValidationError as error:
            found.extend(error.violations)
        # PEM is parsed only when the simpler rules let its fields through (a masked key is
        # not a key to parse); the https rule (field "tls") does not stop it.
        if (
            tls_changed
            and spec.tls is not None
            and not any(v.field.startswith("tls.") for v in found)
        ):
            found.extend(tls_violations(spec.tls))
        if found:
            raise ValidationError(found)
        return _with_not_after(spec) if tls_changed else spec

    async def create(self, spec: EndpointSpec, secret: str = "") -> Endpoint:
        spec = self._validated(spec, tls_changed=True)
        _refuse_placeholders(keep_hidden_values(spec.headers, {})[1])
        if secret:
            validate_secret(spec.signature.scheme, secret)
        now = self._clock()
        value = secret or signing.generate_secret(self._rng)
        endpoint = Endpoint(
            id=new_id("ep", now, self._rng),
            spec=spec,
            status=EndpointStatus.ACTIVE,
            status_reason="created",
            status_changed_at=now,
            secrets=(Secret(id=new_id("sec", now, self._rng), value=value, created_at=now),),
            created_at=now,
            updated_at=now,
        )
        await self._store.insert_endpoint(endpoint)
        return self.notify_changed(endpoint)

    async def get(self, endpoint_id: str) -> Endpoint:
        self._check_endpoint_id(endpoint_id)
        return await self._store.get_endpoint(endpoint_id)

    async def list(
        self,
        *,
        owner_id: str = "",
        status: EndpointStatus | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Endpoint]:
        filter_violations(owner_ids=[("owner_id", owner_id)])
        return await page_of(
            ("endpoints", owner_id, status),
            page_size,
            page_token,
            lambda after, limit: self._store.list_endpoints(
                owner_id=owner_id, status=status, before_id=after, limit=limit
            ),
        )

    async def fifo_queue(self, endpoint: Endpoint) -> FifoQueue | None:
        """What holds a FIFO endpoint up: its head and how many wait behind it (None for a
        concurrent endpoint, which has no head, or a FIFO one with nothing pending). One store
        read per call: a listing pays one per FIFO endpoint on its page."""
        if endpoint.spec.ordering is not Ordering.FIFO:
            return None
        head, waiting = await self._store.fifo_backlog(endpoint.id)
        if head is None:
            return None
        return FifoQueue(head_delivery_id=head.id, waiting=waiting)

    async def update(
        self, endpoint_id: str, fields: Mapping[str, Any], *, id_field: str = "endpoint_id"
    ) -> Endpoint:
        """Replaces the named spec fields; the result is validated as a whole."""
        self._check_endpoint_id(endpoint_id, id_field)
        unknown = sorted(set(fields) - UPDATABLE_FIELDS)
        if unknown:
            raise ValidationError.single("update_mask", f"cannot update {', '.join(unknown)}")
        if not fields:
            raise ValidationError.single("update_mask", "names no field to update")
        now = self._clock()

        def edit(current: Endpoint) -> Endpoint:
            new = dict(fields)
            if "headers" in new:
                # Reads show credential headers as [redacted]: sent back, they keep the value.
                new["headers"], missing = keep_hidden_values(new["headers"], current.spec.headers)
                _refuse_placeholders(missing)
            if "auth" in new:
                new["auth"] = _keep_masked_auth(new["auth"], current.spec.auth)
            if "tls" in new:
                new["tls"] = _keep_masked_key(new["tls"], current.spec.tls)
            spec = dataclasses.replace(current.spec, **new)
            spec = self._validated(spec, tls_changed="tls" in new)
            if spec.signature.scheme is not current.spec.signature.scheme:
                for s in current.live_secrets(now):
                    if signing.check_secret(spec.signature.scheme, s.value) is not None:
                        raise ValidationError.single(
                            "signature.scheme",
                            f"secret {s.id} cannot sign with {spec.signature.scheme.value};"
                            " rotate to a suitable secret (with old_secret_lifetime 0) first",
                        )
            return dataclasses.replace(current, spec=spec, updated_at=now)

        return self.notify_changed(await self._store.modify_endpoint(endpoint_id, edit))

    async def delete(self, endpoint_id: str) -> None:
        self._check_endpoint_id(endpoint_id)
        await self._store.delete_endpoint(endpoint_id)
        self._feed.endpoints_deleted([endpoint_id])

    async def change_status(
        self,
        endpoint_id: str,
        trigger: states.Trigger,
        reason: str,
        *,
        guard: Guard | None = None,
    ) -> Endpoint:
        """Applies one transition of the state table, atomically with the read (and, with
        ``guard``, only while this node owns the endpoint: the engine's verdicts)."""
        self._check_endpoint_id(endpoint_id)
        if len(reason) > 500:
            raise ValidationError.single("reason", "is longer than 500 characters")
        now = self._clock()
        previous: list[EndpointStatus] = []

        def change(current: Endpoint) -> Endpoint:
            target = states.transition(current.status, trigger)
            previous.append(current.status)
            return dataclasses.replace(
                current,
                status=target,
                status_reason=reason or trigger.value,
                status_changed_at=now,
                updated_at=now,
            )

        endpoint = await self._store.modify_endpoint(endpoint_id, change, guard=guard)
        log.info(
            "endpoint status changed",
            extra={
                "endpoint_id": endpoint.id,
                "from": previous[-1].value,
                "to": endpoint.status.value,
                "reason": endpoint.status_reason,
            },
        )
        return self.notify_changed(
            endpoint,
            EndpointStatusChange(
                endpoint_id=endpoint.id,
                owner_id=endpoint.spec.owner_id,
                previous=previous[-1],
                status=endpoint.status,
                reason=endpoint.status_reason,
                changed_at=now,
            ),
        )

    async def rotate_secret(
        self, endpoint_id: str, *, secret: str = "", old_secret_lifetime: float | None = None
    ) -> tuple[Endpoint, Secret]:
        """Adds a secret that signs at once; the others keep signing for the lifetime given."""
        self._check_endpoint_id(endpoint_id)
        lifetime = (
            DEFAULT_OLD_SECRET_LIFETIME if old_secret_lifetime is None else old_secret_lifetime
        )
        if not (0 <= lifetime <= MAX_OLD_SECRET_LIFETIME):
            raise ValidationError.single(
                "old_secret_lifetime", "must be between 0 and 7 days (0 expires them now)"
            )
        now = self._clock()
        new = Secret(
            id=new_id("sec", now, self._rng),
            value=secret or signing.generate_secret(self._rng),
            created_at=now,
        )
        old_expiry = now + lifetime

        def change(current: Endpoint) -> Endpoint:
            if secret:
                validate_secret(current.spec.signature.scheme, secret)
            # The current secrets now expire at old_expiry at the latest; those that are already
            # past it (lifetime 0) are dropped here and never sign again.
            kept = [
                dataclasses.replace(
                    s,
                    expires_at=old_expiry
                    if s.expires_at is None
                    else min(s.expires_at, old_expiry),
                )
                for s in current.live_secrets(now)
            ]
            live = [s for s in kept if s.is_live(now)]
            if len(live) + 1 > MAX_LIVE_SECRETS:
                raise ResourceExhaustedError(
                    f"the endpoint has {len(live)} live secrets, the most allowed is"
                    f" {MAX_LIVE_SECRETS} including the new one; rotate with a shorter"
                    " old_secret_lifetime or wait for one to expire"
                )
            secrets = (new, *live)
            return dataclasses.replace(current, secrets=secrets, updated_at=now)

        endpoint = await self._store.modify_endpoint(endpoint_id, change)
        return self.notify_changed(endpoint), new

    async def live_secrets(self, endpoint_id: str) -> tuple[Secret, ...]:
        endpoint = await self.get(endpoint_id)
        return endpoint.live_secrets(self._clock())


def _refuse_placeholders(names: tuple[str, ...]) -> None:
    """A header holding the placeholder reads show, with no stored value to stand for."""
    if names:
        raise ValidationError.single(
            f"headers[{names[0][:40]!r}]",
            "is the [redacted] placeholder with no stored value; send the real value",
        )
