"""Validation of endpoint specs: one row per rule, valid and invalid."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from convoyd.core.model import ApiKeyAuth, EndpointSpec, RetryPolicy, RetryStrategy
from convoyd.core.validation import Limits, check_url, is_json, validate_endpoint_spec
from convoyd.errors import ValidationError

LIMITS = Limits()
BASE = EndpointSpec(url="https://example.com/hook")


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
