"""The SSRF guard: every address a delivery connects to is checked against the block table.

Three places apply one policy: the resolver drops blocked answers (names), ``send`` checks
literal hosts before any traffic, and the connector's socket factory checks the exact address
of every new socket as a backstop.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from convoyd.core.addresses import IPAddress, IPNetwork, blocked_reason


class BlockedAddressError(OSError):
    """The SSRF guard refused an address. An OSError so that it travels through aiohttp's resolver
    and connector error wrapping (``ClientConnectorError.os_error``); never escapes the sender."""


class AddressGuard:
    """The SSRF policy in force: the fixed table plus the operator's allow-list."""

    __slots__ = ("allow",)

    def __init__(self, allow: Sequence[IPNetwork] = ()) -> None:
        self.allow: tuple[IPNetwork, ...] = tuple(allow)

    def refusal(self, address: str, name: str | None = None) -> str | None:
        """None if ``address`` (an IP string from a resolver or socket) may be connected to, else
        the error text. ``name`` is the host it was resolved from, for the message."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            # Resolvers and aiohttp only hand numeric addresses here; anything else fails closed.
            return f"address {address!r} is not an IP address"
        reason = blocked_reason(ip, self.allow)
        return None if reason is None else blocked_text(ip, reason, name)

    def open_socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        """The connector's socket factory: a socket for ``addr_info`` if its address is allowed,
        else BlockedAddressError. Called once per new connection with the exact peer address."""
        family, type_, proto, _, address = addr_info
        refusal = self.refusal(address[0])
        if refusal is not None:
            raise BlockedAddressError(refusal)
        return socket.socket(family, type_, proto)


def blocked_text(ip: IPAddress, reason: str, name: str | None) -> str:
    what = f"{name} resolves to {ip}, which" if name and name != str(ip) else f"address {ip}"
    return f"{what} is blocked ({reason}); allow it with delivery.allow_cidrs"


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` and keeps only the addresses the guard allows.

    Rebinding cannot slip past it: aiohttp connects to exactly the addresses returned here.
    """

    def __init__(self, guard: AddressGuard, inner: AbstractResolver) -> None:
        self._guard = guard
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        first_refusal = ""
        for result in results:
            refusal = self._guard.refusal(result["host"], host)
            if refusal is None:
                allowed.append(result)
            elif not first_refusal:
                first_refusal = refusal
        if not allowed and first_refusal:
            raise BlockedAddressError(first_refusal)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@functools.lru_cache(maxsize=4096)
def literal_address(host: str) -> IPAddress | None:
    """The address an IP-literal host means; None for a name (cached: hosts repeat per endpoint)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host:
        return None
    # inet_aton is what getaddrinfo uses for numeric hosts, so this reads "2130706433", "0x7f.1"
    # and "017700000001" exactly as the connection would.
    try:
        return IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None
