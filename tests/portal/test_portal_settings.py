"""The [portal] settings: defaults, environment, and values refused with the key named."""

from __future__ import annotations

import pytest

from convoyd import settings
from convoyd.errors import ConfigError
from convoyd.settings import PortalSettings


def test_defaults_and_environment() -> None:
    assert settings.load(env={}).portal == PortalSettings()
    loaded = settings.load(
        env={
            "CONVOYD_PORTAL_PUBLIC_URL": "https://hooks.example.com/",
            "CONVOYD_PORTAL_FRAME_ANCESTORS": "https://app.example.com, http://localhost:3000",
            "CONVOYD_PORTAL_SESSION_LIFETIME": "3600",
        }
    ).portal
    assert loaded.base_url == "https://hooks.example.com"
    assert loaded.frame_ancestors == ("https://app.example.com", "http://localhost:3000")
    assert loaded.session_lifetime == 3600


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"public_url": "hooks.example.com"}, "portal.public_url"),
        ({"public_url": "https://hooks.example.com/prefix"}, "portal.public_url"),
        ({"public_url": "https://u:p@hooks.example.com"}, "portal.public_url"),
        ({"frame_ancestors": ("https://a.example.com; script-src *",)}, "portal.frame_ancestors"),
        ({"frame_ancestors": ("*",)}, "portal.frame_ancestors"),
        ({"session_lifetime": 10}, "portal.session_lifetime"),
    ],
)
def test_bad_values_name_the_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        PortalSettings(**kwargs)  # type: ignore[arg-type]
