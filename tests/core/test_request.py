"""Outbound request headers and their redaction, for every endpoint authentication method."""

from __future__ import annotations

import pytest

from convoyd.core.model import (
    ApiKeyAuth,
    BasicAuth,
    Endpoint,
    EndpointAuth,
    EndpointSpec,
    EndpointStatus,
    OAuth2Auth,
)
from convoyd.core.request import (
    REDACTED,
    auth_header_name,
    basic_authorization,
    bearer_authorization,
    build_headers,
    redact,
)

API_KEY = ApiKeyAuth(header_name="X-Plain", header_value="k3y")  # no credential word in it
BASIC = BasicAuth(username="u", password="pw")
OAUTH2 = OAuth2Auth(token_url="https://auth.invalid/token", client_id="c", client_secret="s")


def endpoint(auth: EndpointAuth | None) -> Endpoint:
    return Endpoint(
        id="ep_1",
        spec=EndpointSpec(url="https://hooks.invalid/in", auth=auth, headers={"X-Plain": "v"}),
        status=EndpointStatus.ACTIVE,
        status_reason="",
        status_changed_at=0.0,
        secrets=(),
        created_at=0.0,
        updated_at=0.0,
    )


@pytest.mark.parametrize(
    ("auth", "name"),
    [(None, ""), (API_KEY, "X-Plain"), (BASIC, "Authorization"), (OAUTH2, "Authorization")],
)
def test_each_method_names_its_credentials_header(auth: EndpointAuth | None, name: str) -> None:
    assert auth_header_name(auth) == name


@pytest.mark.parametrize(
    ("auth", "hidden"),
    [
        (None, {"Authorization", "X-Api-Key"}),  # credential words, whatever the method
        (API_KEY, {"Authorization", "X-Api-Key", "X-Plain"}),
        (BASIC, {"Authorization", "X-Api-Key"}),
        (OAUTH2, {"Authorization", "X-Api-Key"}),
    ],
)
def test_redact_hides_the_credentials_header_of_every_method(
    auth: EndpointAuth | None, hidden: set[str]
) -> None:
    headers = [("Authorization", "opaque"), ("X-Api-Key", "k"), ("X-Plain", "k3y"), ("X-N", "1")]
    shown = dict(redact(headers, endpoint(auth)))
    assert {name for name, value in shown.items() if value == REDACTED} == hidden


@pytest.mark.parametrize(
    ("auth", "plain", "event_authorization_sent"),
    [
        (None, "v", True),
        # The API key replaces the custom header of its name; Authorization stays the event's.
        (API_KEY, "k3y", True),
        # Basic and OAuth2 own Authorization: neither a custom nor an event header may set it.
        (BASIC, "v", False),
        (OAUTH2, "v", False),
    ],
)
def test_build_headers_keeps_the_credentials_header_for_the_method(
    auth: EndpointAuth | None, plain: str, event_authorization_sent: bool
) -> None:
    headers = build_headers(
        endpoint=endpoint(auth),
        keys=[b"k" * 24],
        delivery_id="dl_1",
        timestamp=1,
        body=b"{}",
        event_headers={"Authorization": "event's"},
        user_agent="convoyd",
    )
    assert [v for n, v in headers if n == "X-Plain"] == [plain]
    assert (("Authorization", "event's") in headers) is event_authorization_sent


@pytest.mark.parametrize(
    ("username", "password", "encoded"),
    [
        ("u", "pw", "dTpwdw=="),
        # RFC 7617 §2: the password may hold ':'; UTF-8 for what is not ASCII (§2.1).
        ("Aladdin", "open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ("jörg", "a:b", "asO2cmc6YTpi"),
        ("u", "", "dTo="),
    ],
)
def test_basic_authorization_is_base64_of_user_colon_password(
    username: str, password: str, encoded: str
) -> None:
    assert basic_authorization(username, password) == f"Basic {encoded}"


def test_basic_credentials_go_with_every_request_and_are_redacted_in_the_log() -> None:
    ep = endpoint(BasicAuth(username="Aladdin", password="open sesame"))
    headers = build_headers(
        endpoint=ep,
        keys=[b"k" * 24],
        delivery_id="dl_1",
        timestamp=1,
        body=b"{}",
        event_headers={},
        user_agent="convoyd",
    )
    assert [v for n, v in headers if n == "Authorization"] == ["Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="]
    assert dict(redact(headers, ep))["Authorization"] == REDACTED


def test_oauth2_and_no_auth_add_no_authorization_of_their_own() -> None:
    for auth in (None, OAUTH2):
        headers = build_headers(
            endpoint=endpoint(auth),
            keys=[b"k" * 24],
            delivery_id="dl_1",
            timestamp=1,
            body=b"{}",
            event_headers={},
            user_agent="convoyd",
        )
        assert "Authorization" not in dict(headers)
    assert bearer_authorization("t0k") == "Bearer t0k"
