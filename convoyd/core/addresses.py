"""What outbound deliveries may reach: the SSRF table, the operator's allow-list, URL host rules.

The table is explicit on purpose (architecture.md §9): ``ipaddress``'s ``is_private`` and
``is_global`` change between Python releases and miss the NAT64 and 6to4 spellings of addresses
such as 169.254.169.254. Every row names the reason shown to the operator.

IPv6 forms that carry an IPv4 address are judged by that address:

- *Translation* forms (IPv4-mapped ``::ffff:0:0/96``, IPv4-translated ``::ffff:0:0:0/96``, NAT64
  ``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``) reach the embedded IPv4 address, so
  their verdict is that address's verdict, allow-list included: allowing ``127.0.0.0/8`` also
  allows ``::ffff:127.0.0.1``, because it is the same destination.
- *Tunnel and deprecated* forms (Teredo ``2001::/32``, IPv4-compatible ``::/96``) are blocked
  whatever they embed; only an allow-list entry covering the IPv6 address itself lets them through.

Everything in IPv6 outside ``2000::/3`` (the only block IANA allocates for global unicast) that is
not one of those forms is blocked as reserved, so an address space nobody routes today cannot
become a way around the table tomorrow.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# (network, reason); the first match wins, so more specific rows come first.
_V4_ROWS: tuple[tuple[str, str], ...] = (
    ("169.254.169.254/32", "cloud metadata"),  # AWS, GCP, Azure, OpenStack, ...
    ("100.100.100.200/32", "cloud metadata"),  # Alibaba Cloud, inside the CGNAT block
    ("168.63.129.16/32", "cloud metadata"),  # Azure WireServer: a public address, platform-only
    ("255.255.255.255/32", "broadcast"),
    ("0.0.0.0/8", "unspecified"),  # Linux connects 0.0.0.0 to the local host
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved (6to4 relay anycast)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)

_V6_ROWS: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fd00:ec2::254/128", "cloud metadata"),  # AWS IMDS over IPv6
    ("100::/64", "discard-only"),
    ("2001:2::/48", "benchmarking"),
    ("2001:10::/28", "reserved (ORCHID)"),
    ("2001:20::/28", "reserved (ORCHIDv2)"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)

# Anything in IPv6 not matched above and outside global unicast.
_V6_GLOBAL_UNICAST = IPv6Network("2000::/3")


def _last32(value: int) -> IPv4Address:
    return IPv4Address(value & 0xFFFFFFFF)


def _six_to_four(value: int) -> IPv4Address:
    # 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16..48.
    return IPv4Address((value >> 80) & 0xFFFFFFFF)


def _teredo(value: int) -> IPv4Address:
    # RFC 4380: the client's public address is stored inverted in the last 32 bits.
    return IPv4Address((value & 0xFFFFFFFF) ^ 0xFFFFFFFF)


# (network, name, where the IPv4 address sits, whether the form is judged by that address).
_V6_EMBEDDING: tuple[tuple[str, str, Callable[[int], IPv4Address], bool], ...] = (
    ("::ffff:0:0/96", "IPv4-mapped", _last32, True),
    ("::ffff:0:0:0/96", "IPv4-translated", _last32, True),
    ("64:ff9b::/96", "NAT64", _last32, True),
    ("64:ff9b:1::/48", "NAT64", _last32, True),
    ("2002::/16", "6to4", _six_to_four, True),
    ("2001::/32", "Teredo tunnel", _teredo, False),
    # ::/128 and ::1/128 are inside ::/96; the unspecified and loopback rows are checked first.
    ("::/96", "IPv4-compatible (deprecated)", _last32, False),
)


def _mask_rows(rows: Sequence[tuple[str, str]]) -> tuple[tuple[int, int, str], ...]:
    # Integers instead of ``ip in network``: the guard runs for every new connection.
    out: list[tuple[int, int, str]] = []
    for cidr, reason in rows:
        net = ipaddress.ip_network(cidr)
        out.append((int(net.network_address), int(net.netmask), reason))
    return tuple(out)


_V4_TABLE = _mask_rows(_V4_ROWS)
_V6_TABLE = _mask_rows(_V6_ROWS)
_V6_EMBEDDED = tuple(
    (int(net.network_address), int(net.netmask), name, extract, judged_by_ipv4)
    for cidr, name, extract, judged_by_ipv4 in _V6_EMBEDDING
    for net in (IPv6Network(cidr),)
)
_V6_GLOBAL = (int(_V6_GLOBAL_UNICAST.network_address), int(_V6_GLOBAL_UNICAST.netmask))


def _lookup(value: int, table: tuple[tuple[int, int, str], ...]) -> str | None:
    for network, mask, reason in table:
        if value & mask == network:
            return reason
    return None


def blocked_reason(ip: IPAddress, allow: Sequence[IPNetwork]) -> str | None:
    """None if deliveries may connect to ``ip``, else a short reason ("loopback", "private", ...).

    ``allow`` is the operator's allow-list (``delivery.allow_cidrs``): an address inside any of its
    networks is allowed even if the table blocks it.
    """
    if any(ip in network for network in allow):
        return None
    value = int(ip)
    if ip.version == 4:
        return _lookup(value, _V4_TABLE)
    # The plain rows first: ::/128 and ::1/128 must not be read as IPv4-compatible forms.
    reason = _lookup(value, _V6_TABLE)
    if reason is not None:
        return reason
    for network, mask, name, extract, judged_by_ipv4 in _V6_EMBEDDED:
        if value & mask != network:
            continue
        inner = extract(value)
        if judged_by_ipv4:
            inner_reason = blocked_reason(inner, allow)
            return None if inner_reason is None else f"{name} {inner_reason}"
        inner_reason = _lookup(int(inner), _V4_TABLE)
        return name if inner_reason is None else f"{name}, embeds {inner_reason}"
    if value & _V6_GLOBAL[1] != _V6_GLOBAL[0]:
        return "reserved"
    return None


# What "localhost" means to the resolver (/etc/hosts, RFC 6761 §6.3): always the host itself.
_LOCALHOST = (IPv4Address("127.0.0.1"), IPv6Address("::1"))


def refused_host(url: str, allow: Sequence[IPNetwork]) -> str | None:
    """What the guard will refuse when a delivery connects to ``url``'s host ("127.0.0.1
    (loopback)"), or None: allowed, or a name other than ``localhost``.

    Decided without a lookup: IP literals and ``localhost`` are judged here; any other name is
    judged by the addresses it resolves to when an attempt connects (a lookup now could differ
    from that one, and would hold up the call that asked).
    """
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    if host == "localhost":
        reasons = [blocked_reason(ip, allow) for ip in _LOCALHOST]
        if any(reason is None for reason in reasons):
            return None  # the resolver's other answers are dropped, this one is connected to
        return f"localhost ({' and '.join(str(ip) for ip in _LOCALHOST)}: loopback)"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    reason = blocked_reason(ip, allow)
    return None if reason is None else f"{ip} ({reason})"


def parse_allow_list(cidrs: Sequence[str]) -> list[IPNetwork]:
    """The networks of ``delivery.allow_cidrs``; a bare address means just that address.

    Host bits are ignored ("127.0.0.1/8" is 127.0.0.0/8), as in the settings validation. Raises
    ValueError naming the first entry that is not a CIDR range.
    """
    networks: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{cidr!r} is not a CIDR range") from None
    return networks


# The host rules of a webhook URL: what the HTTP client (aiohttp over yarl) can connect to.
_NAME_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_NUMBER_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")  # WHATWG URL: a label that "ends in a number"
_OCTAL = re.compile(r"0[0-7]+")
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"0x[0-9a-f]*")
_MAX_NAME_LENGTH = 253


def _shown(host: str) -> str:
    return repr(host if len(host) <= 64 else host[:64] + "...")


def ipv4_from_legacy(host: str) -> IPv4Address | None:
    """The address a legacy numeric IPv4 spelling means ("2130706433", "127.1", "0x7f.1",
    "0177.0.0.1", "127.0.0.1."), as WHATWG URL parsing (and inet_aton) reads it; None if
    ``host`` is not one. Lower-case ASCII expected."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        if _HEX.fullmatch(part):
            numbers.append(int(part[2:] or "0", 16))
        elif part.startswith("0") and len(part) > 1:  # octal, or nothing ("08")
            if not _OCTAL.fullmatch(part):
                return None
            numbers.append(int(part, 8))
        elif _DECIMAL.fullmatch(part):
            numbers.append(int(part))
        else:
            return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return IPv4Address(value)


def url_host_problem(host: str, *, bracketed: bool = False) -> str | None:
    """Why no delivery could ever be sent to ``host`` (a URL's host as written, without
    brackets), or None.

    - ``[...]`` holds an IPv6 address without a zone id (aiohttp cannot connect to "%lo").
    - A host whose last label is a number is an IPv4 address and must be the canonical
      dotted quad: aiohttp refuses "2130706433", "127.1", "0177.0.0.1", "127.0.0.1." and
      friends (and the hex forms are read differently by different resolvers).
    - A name is 1-63 character labels of letters, digits, "-" and "_" (253 at most, one
      trailing dot allowed), or an internationalised name that IDNA can encode.
    """
    if bracketed:
        return _bracketed_host_problem(host)
    name = host.lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return f"host {_shown(host)} is not a valid internationalised domain name"
    labels = name.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
        if not _NUMBER_LABEL.fullmatch(labels[-1]):
            # The resolver is given the name as written, and "localhost." is not in /etc/hosts.
            return f"host {_shown(host)} ends with a dot; leave the dot out"
    if _NUMBER_LABEL.fullmatch(labels[-1]):
        return _ipv4_host_problem(host, name)
    return _dns_name_problem(host, name, labels)


def _bracketed_host_problem(host: str) -> str | None:
    if "%" in host:
        return f"host {_shown(host)} has an IPv6 zone id, which cannot be connected to"
    try:
        IPv6Address(host)
    except ValueError:
        return f"host {_shown(host)} in [brackets] must be an IPv6 address"
    return None


def _ipv4_host_problem(host: str, name: str) -> str | None:
    """``name`` (``host`` lower-cased) ends in a number, so it must be a dotted quad."""
    address = ipv4_from_legacy(name)
    if address is None:
        return f"host {_shown(host)} is not a valid IPv4 address"
    if name != str(address):
        return (
            f"host {_shown(host)} is not an IPv4 address in dotted-quad form, which the"
            f" HTTP client refuses; write {address}"
        )
    return None


def _dns_name_problem(host: str, name: str, labels: list[str]) -> str | None:
    """``name`` (``host`` lower-cased, IDNA-encoded) split into ``labels`` without the
    trailing empty one."""
    if len(name.rstrip(".")) > _MAX_NAME_LENGTH:
        return f"host is longer than {_MAX_NAME_LENGTH} characters"
    for label in labels:
        if not _NAME_LABEL.fullmatch(label):
            return (
                f"host {_shown(host)} is not a DNS name (labels of 1-63 letters, digits,"
                " '-' and '_' separated by single dots)"
            )
        if label.startswith("xn--") and not _punycode_decodes(label[4:]):
            return f"host {_shown(host)} has a label that is not valid punycode"
    return None


def _punycode_decodes(encoded: str) -> bool:
    """Whether ``encoded`` (a label after its "xn--") decodes to some text."""
    try:
        return bool(encoded.encode("ascii").decode("punycode"))
    except UnicodeError:
        return False
