"""The store's JSON encoder writes exactly what json.dumps writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from convoyd.store.codec import dumps


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
