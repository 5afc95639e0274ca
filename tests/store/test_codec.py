"""The store's JSON: its encoder writes exactly what json.dumps writes; endpoint specs of
every authentication method and ordering, and of rows written before some existed, read back
as written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from convoyd.core.model import EndpointSpec, Ordering
from convoyd.store.codec import dumps, spec_from_row, spec_to_json
from tests.store.contract_data import API_KEY, AUTH_METHODS, TLS, endpoint


@pytest.mark.parametrize(
    "value",
    [
        [],
        {},
        ("ep_01J", "ep_02K"),
        (("Content-Type", "application/json"), ("webhook-signature", "v1,abc= v1,def=")),
        {"X-Tenant": "acme", "X-Quote": 'say "hi"\\'},
        {"é": "ü €", "emoji": "🚀", "ctl": "\x00\x1f\n\t"},
        [1, -2.5, 1e300, float("nan"), float("inf"), None, True, False],
        {"nested": [{"a": [1, {"b": None}]}]},
        {1: "int key"},
    ],
)
def test_dumps_matches_json_dumps(value: Any) -> None:
    assert dumps(value) == json.dumps(value)


def test_dumps_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps([object()])  # type: ignore[list-item]


def test_specs_written_before_basic_oauth2_and_tls_read_as_they_were() -> None:
    # What spec_to_json wrote when the API key was the only method: no "method", no "tls".
    old = json.loads(spec_to_json(EndpointSpec(url="https://hooks.invalid/in", auth=API_KEY)))
    del old["auth"]["method"], old["tls"]
    spec = spec_from_row("https://hooks.invalid/in", "", "", json.dumps(old))
    assert spec.auth == API_KEY and spec.tls is None


@pytest.mark.parametrize("method", sorted(AUTH_METHODS))
def test_each_authentication_method_is_stored_under_its_name(method: str) -> None:
    spec = EndpointSpec(url="https://hooks.invalid/in", auth=AUTH_METHODS[method], tls=TLS)
    doc = json.loads(spec_to_json(spec))
    assert doc["auth"]["method"] == method
    assert spec_from_row(spec.url, spec.name, spec.owner_id, spec_to_json(spec)) == spec


@pytest.mark.parametrize("ordering", list(Ordering))
def test_each_ordering_is_stored_under_its_name_and_reads_back(ordering: Ordering) -> None:
    spec = endpoint(ordering=ordering).spec
    doc = json.loads(spec_to_json(spec))
    assert doc["ordering"] == ordering.value
    assert spec_from_row(spec.url, spec.name, spec.owner_id, spec_to_json(spec)) == spec


def test_specs_written_before_fifo_endpoints_read_as_concurrent() -> None:
    old = json.loads(spec_to_json(endpoint(ordering=Ordering.FIFO).spec))
    del old["ordering"]
    spec = spec_from_row("https://hooks.invalid/in", "", "", json.dumps(old))
    assert spec.ordering is Ordering.CONCURRENT


def test_an_unknown_stored_ordering_is_refused_not_guessed() -> None:
    doc = json.loads(spec_to_json(EndpointSpec(url="https://hooks.invalid/in")))
    doc["ordering"] = "lifo"
    with pytest.raises(ValueError, match="lifo"):
        spec_from_row("https://hooks.invalid/in", "", "", json.dumps(doc))
