"""Validation of endpoint specs: one row per rule, valid and invalid."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from convoyd.core.model import (
    ApiKeyAuth,
    BasicAuth,
    EndpointSpec,
    EndpointTls,
    OAuth2Auth,
    RetryPolicy,
    RetryStrategy,
)
from convoyd.core.validation import (
    MAX_JSON_DEPTH,
    Limits,
    check_header_name,
    check_header_value,
    check_url,
    excerpt,
    id_problem,
    is_json,
    json_problem,
    nested_deeper_than,
    validate_endpoint_spec,
)
from convoyd.errors import ValidationError

LIMITS = Limits()
BASE = EndpointSpec(url="https://example.com/hook")
BASIC = BasicAuth(username="convoyd", password="pw")
OAUTH2 = OAuth2Auth(
    token_url="https://auth.invalid/oauth/token", client_id="cid", client_secret="cs"
)
# Text only: the PEM itself is read outside core (tests/test_tls_material.py).
CERT, KEY = "-----BEGIN CERTIFICATE-----...", "-----BEGIN PRIVATE KEY-----..."


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/hook", True),
        ("http://127.0.0.1:8080/x?y=1", True),
        ("http://[::1]:9/", True),
        ("", False),
        ("ftp://example.com/", False),
        ("javascript:alert(1)", False),
        ("https://", False),
        ("https://user:pw@example.com/", False),
        ("https://example.com/#frag", False),
        ("https://exa mple.com/", False),
        ("https://example.com/\r\nX: y", False),
        ("https://example.com:99999/", False),
        ("https://example.com:0/", False),
        ("https://example.com/" + "a" * 3000, False),
    ],
)
def test_urls(url: str, ok: bool) -> None:
    assert (check_url(url, LIMITS) is None) is ok


@pytest.mark.parametrize(
    ("changes", "bad_field"),
    [
        ({}, None),
        ({"name": "x" * 201}, "name"),
        ({"name": "two\nlines"}, "name"),
        ({"owner_id": "has space"}, "owner_id"),
        ({"owner_id": "acme-1"}, None),
        ({"event_types": ("a.b", "a.b")}, "event_types[1]"),
        ({"event_types": tuple(f"t{i}" for i in range(101))}, "event_types"),
        ({"http_timeout": 0.0}, "http_timeout"),
        ({"http_timeout": 60.0}, None),
        ({"http_timeout": float("nan")}, "http_timeout"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"rate_limit_duration": 0.0}, "rate_limit_duration"),
        ({"headers": {"X-Ok": "v"}}, None),
        ({"headers": {"Bad Name": "v"}}, "headers"),
        ({"headers": {"webhook-signature": "v"}}, "headers['webhook-signature']"),
        ({"headers": {"Host": "evil"}}, "headers['Host']"),
        ({"headers": {"X-A": "a\nb"}}, "headers['X-A']"),
        ({"headers": {f"X-{i}": "v" for i in range(33)}}, "headers"),
        ({"auth": ApiKeyAuth(header_name="X-Key", header_value="v")}, None),
        (
            {"auth": ApiKeyAuth(header_name="X-Key", header_value="")},
            "authentication.api_key.header_value",
        ),
        (
            {"auth": ApiKeyAuth(header_name="X-Key", header_value="********")},
            "authentication.api_key.header_value",
        ),
        (
            {"auth": ApiKeyAuth(header_name="Content-Length", header_value="v")},
            "authentication.api_key.header_name",
        ),
        (
            {"auth": ApiKeyAuth(header_name="X-Key", header_value="v"), "headers": {"x-key": "w"}},
            "authentication.api_key.header_name",
        ),
        ({"auth": BASIC}, None),
        ({"auth": BasicAuth(username="", password="pw")}, "authentication.basic.username"),
        ({"auth": BasicAuth(username="a:b", password="pw")}, "authentication.basic.username"),
        ({"auth": BasicAuth(username="a\nb", password="pw")}, "authentication.basic.username"),
        ({"auth": BasicAuth(username="u", password="")}, "authentication.basic.password"),
        ({"auth": BasicAuth(username="u", password="********")}, "authentication.basic.password"),
        ({"auth": BasicAuth(username="u", password="p" * 1025)}, "authentication.basic.password"),
        ({"auth": BASIC, "headers": {"authorization": "x"}}, "headers['authorization']"),
        ({"auth": OAUTH2}, None),
        ({"auth": OAUTH2, "headers": {"Authorization": "x"}}, "headers['Authorization']"),
        (
            {
                "auth": ApiKeyAuth(header_name="X-Key", header_value="v"),
                "headers": {"Authorization": "x"},
            },
            None,  # an API key in another header leaves Authorization to the custom headers
        ),
        (
            {"auth": dataclasses.replace(OAUTH2, token_url="http://127.0.0.1:8080/token")},
            None,  # the token server on this host
        ),
        ({"auth": dataclasses.replace(OAUTH2, token_url="http://localhost/t")}, None),
        ({"auth": dataclasses.replace(OAUTH2, token_url="http://[::1]/t")}, None),
        (
            {"auth": dataclasses.replace(OAUTH2, token_url="http://auth.invalid/token")},
            "authentication.oauth2.token_url",
        ),
        (
            {"auth": dataclasses.replace(OAUTH2, token_url="ftp://auth.invalid/token")},
            "authentication.oauth2.token_url",
        ),
        (
            {"auth": dataclasses.replace(OAUTH2, token_url="https://u:p@auth.invalid/t")},
            "authentication.oauth2.token_url",
        ),
        ({"auth": dataclasses.replace(OAUTH2, token_url="")}, "authentication.oauth2.token_url"),
        ({"auth": dataclasses.replace(OAUTH2, client_id="")}, "authentication.oauth2.client_id"),
        (
            {"auth": dataclasses.replace(OAUTH2, client_secret="")},
            "authentication.oauth2.client_secret",
        ),
        (
            {"auth": dataclasses.replace(OAUTH2, client_secret="********")},
            "authentication.oauth2.client_secret",
        ),
        ({"auth": dataclasses.replace(OAUTH2, scopes=("read", "write:hooks"))}, None),
        (
            {"auth": dataclasses.replace(OAUTH2, scopes=("read write",))},
            "authentication.oauth2.scopes[0]",
        ),
        (
            {"auth": dataclasses.replace(OAUTH2, scopes=("a", ""))},
            "authentication.oauth2.scopes[1]",
        ),
        (
            {"auth": dataclasses.replace(OAUTH2, scopes=("a", 'b"'))},
            "authentication.oauth2.scopes[1]",
        ),
        (
            {"auth": dataclasses.replace(OAUTH2, scopes=("a", "a"))},
            "authentication.oauth2.scopes[1]",
        ),
        (
            {"auth": dataclasses.replace(OAUTH2, scopes=tuple(f"s{i}" for i in range(51)))},
            "authentication.oauth2.scopes",
        ),
        ({"auth": dataclasses.replace(OAUTH2, audience="https://api.invalid")}, None),
        ({"auth": dataclasses.replace(OAUTH2, audience="a\rb")}, "authentication.oauth2.audience"),
        ({"tls": EndpointTls(client_certificate_pem=CERT, client_key_pem=KEY, ca_pem=CERT)}, None),
        ({"tls": EndpointTls(ca_pem=CERT)}, None),
        ({"tls": EndpointTls(client_certificate_pem=CERT)}, "tls.client_key_pem"),
        ({"tls": EndpointTls(client_key_pem=KEY)}, "tls.client_certificate_pem"),
        (
            {"tls": EndpointTls(client_certificate_pem=CERT, client_key_pem="********")},
            "tls.client_key_pem",
        ),
        ({"tls": EndpointTls(ca_pem="x" * 65537)}, "tls.ca_pem"),
        ({"tls": EndpointTls(ca_pem=CERT + "\x00")}, "tls.ca_pem"),
        ({"tls": EndpointTls(ca_pem=CERT), "url": "http://hooks.invalid/hook"}, "tls"),
        ({"tls": EndpointTls(), "url": "http://hooks.invalid/hook"}, None),  # nothing set
        ({"content_type": ""}, "content_type"),
        ({"max_concurrency": 257}, "max_concurrency"),
        ({"retry_policy": RetryPolicy(jitter=1.5)}, "retry_policy.jitter"),
        ({"retry_policy": RetryPolicy(delays=(-1.0,))}, "retry_policy.schedule.delays[0]"),
        (
            {
                "retry_policy": RetryPolicy(
                    strategy=RetryStrategy.EXPONENTIAL, initial_interval=10, max_interval=5
                )
            },
            "retry_policy.exponential.max_interval",
        ),
        (
            {"retry_policy": RetryPolicy(strategy=RetryStrategy.LINEAR, interval=0.0)},
            "retry_policy.linear.interval",
        ),
        (
            {"retry_policy": RetryPolicy(strategy=RetryStrategy.LINEAR, max_retries=51)},
            "retry_policy.linear.max_retries",
        ),
    ],
)
def test_spec_rules(changes: dict[str, Any], bad_field: str | None) -> None:
    spec = dataclasses.replace(BASE, **changes)
    if bad_field is None:
        validate_endpoint_spec(spec, LIMITS)
        return
    with pytest.raises(ValidationError) as info:
        validate_endpoint_spec(spec, LIMITS)
    assert bad_field in [v.field for v in info.value.violations]


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        (b'{"a": 1}', True),
        (b"[]", True),
        (b'"text"', True),
        (b"  null  ", True),
        ('{"é": "ü"}'.encode(), True),
        ('{"a": 1}'.encode("utf-16"), True),  # json.loads reads UTF-16 with a BOM: so do we
        (b'\xef\xbb\xbf{"a": 1}', True),  # a UTF-8 BOM, as json.loads accepts it
        (b"", False),
        (b"{", False),
        (b'{"a": 1} {"b": 2}', False),  # two documents
        (b"\xff\xfe\xfd", False),
        (b"NaN", True),  # json.loads' own leniency, kept as it was
    ],
)
def test_is_json_agrees_with_json_loads(data: bytes, ok: bool) -> None:
    assert is_json(data) is ok


# Hardening: header bytes the HTTP client refuses, deep JSON, id shapes, echoes of bad input.

AIOHTTP_REFUSES = [chr(c) for c in (*range(0x09), *range(0x0A, 0x20), 0x7F)]


@pytest.mark.parametrize("char", [*AIOHTTP_REFUSES, "\ud800", "\udfff"])
def test_header_values_with_bytes_the_client_refuses(char: str) -> None:
    assert check_header_value(f"a{char}b", LIMITS) is not None


@pytest.mark.parametrize("value", ["", "a b", "a\tb", "é", "€", "🙂", "\x80", "ÿ", "~!@#"])
def test_header_values_the_client_sends(value: str) -> None:
    assert check_header_value(value, LIMITS) is None


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("X-Ok", True),
        ("x!#$%&'*+-.^_`|~9", True),
        ("X-A\n", False),  # "$" in a regex also matches before a final newline
        ("X A", False),
        ("X:A", False),
        ("é", False),
        ("", False),
        ("X" * 256, True),
        ("X" * 257, False),
        ("Webhook-Signature", False),
    ],
)
def test_header_names(name: str, ok: bool) -> None:
    assert (check_header_name(name, LIMITS) is None) == ok


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"headers": {"X-P": "a\x01b"}}, "headers['X-P']"),
        ({"headers": {"X-P": "a\x7f"}}, "headers['X-P']"),
        ({"headers": {"X" * 300: "v"}}, "headers['" + "X" * 64 + "'...]"),
        (
            {"auth": ApiKeyAuth(header_name="X-Key", header_value="k\x1b")},
            "authentication.api_key.header_value",
        ),
        (
            {"auth": ApiKeyAuth(header_name="X-Key\n", header_value="k")},
            "authentication.api_key.header_name",
        ),
        ({"content_type": "application/json\ud800"}, "content_type"),
        ({"owner_id": "acme\n"}, "owner_id"),
        ({"event_types": ("a\n",)}, "event_types[0]"),
        ({"name": "x\ud800"}, "name"),
    ],
)
def test_spec_fields_the_client_could_not_send(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_endpoint_spec(dataclasses.replace(BASE, **changes), LIMITS)
    assert field in {v.field for v in caught.value.violations}


def nest(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize(
    ("text", "deeper"),
    [
        (nest(MAX_JSON_DEPTH), False),
        (nest(MAX_JSON_DEPTH + 1), True),
        (nest(1000, '{"a":', "}"), True),
        ("[" * 100_000, True),  # unbalanced: a parser would still recurse that deep
        ("[" + "[1]," * 10_000 + "1]", False),  # many brackets, shallow
        (f'["{"[" * 5000}"]', False),  # brackets inside a string do not nest
        ('["\\"' + "[" * 5000 + '"]', False),  # nor after an escaped quote
        ("[1]" * 200, False),
    ],
)
def test_nesting_depth(text: str, deeper: bool) -> None:
    assert nested_deeper_than(text, MAX_JSON_DEPTH) is deeper


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (nest(1000).encode(), "levels deep"),
        (nest(1000).encode("utf-16"), "levels deep"),  # json.loads reads UTF-16 too
        (b"\xef\xbb\xbf" + nest(1000).encode(), "levels deep"),
        (b"[" * 1000, "levels deep"),
        (nest(MAX_JSON_DEPTH).encode(), None),
        (nest(MAX_JSON_DEPTH).encode("utf-32"), None),
        (b"[", "not valid JSON"),
    ],
)
def test_json_problem(data: bytes, problem: str | None) -> None:
    found = json_problem(data)
    assert found is None if problem is None else problem in (found or "")


@pytest.mark.parametrize(
    ("prefix", "value", "ok"),
    [
        ("ep", "ep_01J0000000000000000000000A", True),
        ("ep", "ep_" + "0" * 26, True),
        ("ep", "ev_" + "0" * 26, False),
        ("ep", "ep_" + "0" * 25, False),
        ("ep", "ep_" + "0" * 27, False),
        ("ep", "ep_" + "o" * 26, False),  # lower case, and O is not a Crockford digit
        ("ep", "ep_" + "0" * 26 + "\n", False),
        ("ep", "", False),
        ("dl", "dl_" + "Z" * 26, True),
        ("pl", "pl_" + "U" * 26, False),  # U is not a Crockford digit either
        ("ev", "X" * 1_000_000, False),
    ],
)
def test_id_shapes(prefix: str, value: str, ok: bool) -> None:
    assert (id_problem(prefix, value) is None) == ok


def test_excerpt_quotes_at_most_a_short_prefix() -> None:
    assert excerpt("abc") == "'abc'"
    shown = excerpt("x" * 1_000_000)
    assert len(shown) < 80 and shown.endswith("...")
