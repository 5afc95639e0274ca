"""The SSRF table (every blocked range with its reason, embedded IPv4 forms, the allow-list) and
the URL host rules.

Pure classification only: nothing here opens a socket.
"""

from __future__ import annotations

import ipaddress

import pytest

from convoyd.core.addresses import (
    blocked_reason,
    ipv4_from_legacy,
    parse_allow_list,
    refused_host,
    url_host_problem,
)


def reason(address: str, allow: tuple[str, ...] = ()) -> str | None:
    return blocked_reason(ipaddress.ip_address(address), parse_allow_list(allow))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        # IPv4: each range at its first and last address where the edges matter.
        ("0.0.0.0", "unspecified"),  # noqa: S104 - classified here, never bound
        ("0.255.255.255", "unspecified"),
        ("10.0.0.0", "private"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("100.64.0.0", "shared address space (CGNAT)"),
        ("100.127.255.255", "shared address space (CGNAT)"),
        ("100.100.100.200", "cloud metadata"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("169.254.0.1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.169.253", "link-local"),
        ("168.63.129.16", "cloud metadata"),
        ("172.16.0.0", "private"),
        ("172.31.255.255", "private"),
        ("192.0.0.1", "reserved (IETF protocol assignments)"),
        ("192.0.2.1", "documentation"),
        ("192.88.99.1", "reserved (6to4 relay anycast)"),
        ("192.168.0.1", "private"),
        ("192.168.255.255", "private"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.255", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.254", "reserved"),
        ("255.255.255.255", "broadcast"),
        # IPv6 ranges.
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("100::1", "discard-only"),
        ("2001:db8::1", "documentation"),
        ("2001:2::1", "benchmarking"),
        ("3fff::1", "documentation"),
        ("fc00::1", "private (unique local)"),
        ("fd12:3456::1", "private (unique local)"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("febf:ffff::1", "link-local"),
        ("fec0::1", "site-local (deprecated)"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("4000::1", "reserved"),  # outside 2000::/3, the only global unicast block
        ("::2:3:4:5", "reserved"),
    ],
)
def test_blocked_ranges(address: str, expected: str) -> None:
    assert reason(address) == expected


# IPv4 targets and their spellings in every IPv6 form that embeds an IPv4 address.
EMBEDDED_FORMS = {
    "127.0.0.1": {
        "::ffff:127.0.0.1": "IPv4-mapped loopback",
        "::ffff:0:7f00:1": "IPv4-translated loopback",
        "64:ff9b::7f00:1": "NAT64 loopback",
        "64:ff9b:1::7f00:1": "NAT64 loopback",
        "2002:7f00:1::": "6to4 loopback",
        "2002:7f00:1:1234::5": "6to4 loopback",
        "2001:0:4136:e378:8000:63bf:80ff:fffe": "Teredo tunnel, embeds loopback",
        "::7f00:1": "IPv4-compatible (deprecated), embeds loopback",
    },
    "10.0.0.1": {
        "::ffff:10.0.0.1": "IPv4-mapped private",
        "64:ff9b::a00:1": "NAT64 private",
        "64:ff9b:1::a00:1": "NAT64 private",
        "2002:a00:1::1": "6to4 private",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe": "Teredo tunnel, embeds private",
        "::a00:1": "IPv4-compatible (deprecated), embeds private",
    },
    "169.254.169.254": {
        "::ffff:169.254.169.254": "IPv4-mapped cloud metadata",
        "64:ff9b::a9fe:a9fe": "NAT64 cloud metadata",
        "64:ff9b::169.254.169.254": "NAT64 cloud metadata",
        "64:ff9b:1::a9fe:a9fe": "NAT64 cloud metadata",
        "2002:a9fe:a9fe::": "6to4 cloud metadata",
        "2001:0:4136:e378:8000:63bf:5601:5601": "Teredo tunnel, embeds cloud metadata",
        "::a9fe:a9fe": "IPv4-compatible (deprecated), embeds cloud metadata",
    },
}


@pytest.mark.parametrize(
    ("ipv4", "address", "expected"),
    [
        (ipv4, address, expected)
        for ipv4, forms in EMBEDDED_FORMS.items()
        for address, expected in forms.items()
    ],
)
def test_embedded_ipv4_forms_are_blocked(ipv4: str, address: str, expected: str) -> None:
    assert reason(address) == expected


def test_teredo_decoding_inverts_the_last_32_bits() -> None:
    # The table above is only meaningful if the Teredo entries embed what they claim to.
    for ipv4, forms in EMBEDDED_FORMS.items():
        for address in forms:
            ip = ipaddress.IPv6Address(address)
            if ip.teredo is not None:
                assert str(ip.teredo[1]) == ipv4


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "1.1.1.1",
        "8.8.8.8",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above CGNAT
        "172.15.255.255",
        "172.32.0.0",
        "169.253.255.255",
        "223.255.255.255",
        "2606:4700::1",
        "2a00:1450:4001:82a::200e",
        "::ffff:93.184.216.34",  # IPv4-mapped public
        "64:ff9b::5db8:d822",  # NAT64 of a public address
        "2002:5db8:d822::1",  # 6to4 of a public address
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert reason(address) is None


def test_teredo_is_blocked_even_when_it_embeds_a_public_address() -> None:
    assert reason("2001:0:4136:e378:8000:63bf:a247:29dd") == "Teredo tunnel"


def test_allow_list_lets_loopback_through_but_nothing_else() -> None:
    allow = ("127.0.0.0/8", "::1/128")
    assert reason("127.0.0.1", allow) is None
    assert reason("127.3.2.1", allow) is None
    assert reason("::1", allow) is None
    assert reason("10.0.0.1", allow) == "private"
    assert reason("169.254.169.254", allow) == "cloud metadata"
    assert reason("fe80::1", allow) == "link-local"


def test_allow_list_covers_translation_forms_of_an_allowed_ipv4() -> None:
    # IPv4-mapped, NAT64 and 6to4 reach the embedded address: allowing it allows them.
    allow = ("127.0.0.0/8",)
    assert reason("::ffff:127.0.0.1", allow) is None
    assert reason("64:ff9b::7f00:1", allow) is None
    assert reason("2002:7f00:1::", allow) is None
    assert reason("::ffff:10.0.0.1", allow) == "IPv4-mapped private"


def test_allow_list_does_not_open_tunnel_forms_unless_they_are_listed() -> None:
    teredo = "2001:0:4136:e378:8000:63bf:80ff:fffe"
    assert reason(teredo, ("127.0.0.0/8",)) == "Teredo tunnel, embeds loopback"
    assert reason("::7f00:1", ("127.0.0.0/8",)) == "IPv4-compatible (deprecated), embeds loopback"
    assert reason(teredo, ("2001::/32",)) is None


def test_allow_list_of_a_private_range() -> None:
    allow = ("10.1.0.0/16", "fd00::/8")
    assert reason("10.1.2.3", allow) is None
    assert reason("10.2.0.1", allow) == "private"
    assert reason("fd00:ec2::254", allow) is None  # the operator asked for all of fd00::/8
    assert reason("fc00::1", allow) == "private (unique local)"


def test_parse_allow_list() -> None:
    assert parse_allow_list([" 127.0.0.0/8", "::1", "10.1.2.3/16"]) == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.1.0.0/16"),
    ]
    assert parse_allow_list([]) == []


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "localhost", "", "1.2.3.4/x", "::1/129"])
def test_parse_allow_list_rejects_non_cidrs(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a CIDR range"):
        parse_allow_list(["127.0.0.0/8", bad])


# URL hosts: what aiohttp (over yarl) can connect to (hardening item 9).
FULLWIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "localhost")


@pytest.mark.parametrize(
    ("host", "bracketed", "problem"),
    [
        ("127.0.0.1", False, None),
        ("0.0.0.0", False, None),  # noqa: S104 - canonical; the SSRF guard judges it
        ("example.com", False, None),
        ("EXAMPLE.com", False, None),
        ("a_b.example", False, None),
        ("xn--mnchen-3ya.de", False, None),
        ("xn--zca.de", False, None),  # IDNA 2008's ß: valid punycode
        ("münchen.de", False, None),
        (FULLWIDTH, False, None),
        ("::1", True, None),
        ("::ffff:127.0.0.1", True, None),
        ("127.0.0.1.", False, "dotted-quad"),
        ("2130706434", False, "dotted-quad"),
        ("127.2", False, "dotted-quad"),
        ("127.0.2", False, "dotted-quad"),
        ("0x7f.0.0.1", False, "dotted-quad"),
        ("0x7F000001", False, "dotted-quad"),
        ("0177.0.0.1", False, "dotted-quad"),
        ("127.000.000.001", False, "dotted-quad"),
        ("256.0.0.1", False, "not a valid IPv4"),
        ("127.0.0.1.5", False, "not a valid IPv4"),
        ("example.1", False, "not a valid IPv4"),
        ("0x", False, "dotted-quad"),
        ("example.com.", False, "ends with a dot"),
        ("a..b", False, "not a DNS name"),
        (".a", False, "not a DNS name"),
        ("-" * 64, False, "not a DNS name"),
        ("a$b", False, "not a DNS name"),
        ("%6cocalhost", False, "not a DNS name"),
        ("xn--", False, "punycode"),
        ("xn--99999999", False, "punycode"),
        ("a." * 127 + "a", False, "longer than 253"),
        ("a..b" + "é", False, "internationalised"),
        ("::1%lo", True, "zone id"),
        ("fe80::1%25eth0", True, "zone id"),
        ("v1.x", True, "IPv6 address"),
        ("127.0.0.1", True, "IPv6 address"),
    ],
)
def test_url_hosts(host: str, bracketed: bool, problem: str | None) -> None:
    found = url_host_problem(host, bracketed=bracketed)
    assert found is None if problem is None else problem in (found or ""), found


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706434", "127.0.0.2"),
        ("127.2", "127.0.0.2"),
        ("127.0.2", "127.0.0.2"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("0x", "0.0.0.0"),  # noqa: S104 - a host string, nothing binds
        ("127.0.0.1.", "127.0.0.1"),
        ("4294967296", None),
        ("127.0.0.1.5", None),
        ("08.0.0.1", None),  # 08 is neither octal nor decimal
        ("a.1", None),
    ],
)
def test_legacy_ipv4_spellings(host: str, address: str | None) -> None:
    found = ipv4_from_legacy(host)
    assert (str(found) if found else None) == address


def test_a_long_host_is_not_echoed_whole() -> None:
    assert len(url_host_problem("a" * 10_000) or "") < 200


@pytest.mark.parametrize(
    ("url", "allow", "refused"),
    [
        ("http://127.0.0.1:8000/webhooks", (), "127.0.0.1 (loopback)"),
        ("http://127.0.0.1:8000/webhooks", ("127.0.0.0/8",), None),
        ("http://[::1]:8000/in", (), "::1 (loopback)"),
        ("http://[::ffff:10.0.0.7]/in", (), "::ffff:a00:7 (IPv4-mapped private)"),
        ("https://10.1.2.3/in", ("10.0.0.0/8",), None),
        ("http://169.254.169.254/latest", ("10.0.0.0/8",), "169.254.169.254 (cloud metadata)"),
        ("http://8.8.8.8/in", (), None),  # public
        ("http://LOCALHOST:8000/in", (), "localhost (127.0.0.1 and ::1: loopback)"),
        # The resolver's blocked answers are dropped: one allowed address of localhost will do.
        ("http://localhost:8000/in", ("127.0.0.0/8",), None),
        ("http://localhost:8000/in", ("::1",), None),
        # Other names are judged when an attempt connects, by what they resolve to then.
        ("https://hooks.example.invalid/in", (), None),
        ("http://receiver.localhost/in", (), None),
        ("not a url", (), None),
        ("http://[::1/in", (), None),  # unparseable: validation speaks for it
    ],
)
def test_refused_host_is_decided_without_a_lookup(
    url: str, allow: tuple[str, ...], refused: str | None
) -> None:
    assert refused_host(url, parse_allow_list(allow)) == refused
