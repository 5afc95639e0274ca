"""Advice about an endpoint as configured (Endpoint.warnings): what will make its deliveries fail.

Today that is the daemon's address guard: an endpoint whose URL (or OAuth2 token URL) is a
loopback, private or otherwise blocked address is accepted, since the operator may allow the
range later (``delivery.allow_cidrs``, reloadable), but every attempt would fail until then.
Only IP literals and ``localhost`` are judged; other names are not looked up here (see
convoyd.core.addresses.refused_host and docs/operations.md, "Endpoint warnings").
"""

from __future__ import annotations

from collections.abc import Sequence

from convoyd.core.addresses import IPNetwork, refused_host
from convoyd.core.model import EndpointSpec, OAuth2Auth

# How a warning names the setting that lifts the guard for an address.
ALLOW_SETTING = "the daemon's delivery.allow_cidrs (CONVOYD_DELIVERY_ALLOW_CIDRS)"


def endpoint_warnings(spec: EndpointSpec, allow: Sequence[IPNetwork]) -> list[str]:
    """The warnings of an endpoint with ``spec`` under the allow-list ``allow``; empty when
    there is nothing to say."""
    out: list[str] = []
    refused = refused_host(spec.url, allow)
    if refused is not None:
        out.append(
            f"the daemon's address guard refuses {refused}: deliveries will fail until"
            f" {ALLOW_SETTING} includes it"
        )
    if isinstance(spec.auth, OAuth2Auth):
        refused = refused_host(spec.auth.token_url, allow)
        if refused is not None:
            out.append(
                f"the daemon's address guard refuses the token URL's host {refused}: token"
                f" requests, and so deliveries, will fail until {ALLOW_SETTING} includes it"
            )
    return out
