"""How convoyd proves itself to an endpoint, as the portal's endpoint form and pages hold it:
the form's authentication and TLS fields, the values an endpoint fills them with, the spec
values they post, and the one-line summaries the endpoint's page shows.

Write-only values (the API key, the basic password, the OAuth2 client secret, the client key)
are never put into a page: the form shows the mask for a stored one, and posting the mask back
leaves it to the service to keep the stored value (for the same header, username, token URL
and client id, or a key that fits the certificate). A value typed into a form that comes back
with errors is not shown again either: it has to be typed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convoyd.core.model import (
    ApiKeyAuth,
    BasicAuth,
    EndpointAuth,
    EndpointSpec,
    EndpointTls,
    OAuth2Auth,
    OAuth2ClientAuth,
)
from convoyd.core.request import is_placeholder
from convoyd.core.validation import MASK
from convoyd.errors import FieldViolation
from convoyd.portal.templates import Html, esc, render, when

METHODS = (
    ("none", "None"),
    ("api_key", "API key in a header"),
    ("basic", "HTTP basic"),
    ("oauth2", "OAuth2 client credentials"),
)
CLIENT_AUTHS = (
    (OAuth2ClientAuth.BASIC.value, "HTTP basic header (default)"),
    (OAuth2ClientAuth.BODY.value, "In the form body"),
)
SECRET_FIELDS = ("api_key_value", "basic_password", "oauth2_client_secret", "tls_client_key_pem")
PEM_FIELDS = ("tls_client_certificate_pem", "tls_client_key_pem", "tls_ca_pem")
FIELDS = (
    *("auth_method", "api_key_header", "api_key_value", "basic_username", "basic_password"),
    *("oauth2_token_url", "oauth2_client_id", "oauth2_client_secret", "oauth2_scopes"),
    *("oauth2_audience", "oauth2_client_auth", *PEM_FIELDS),
)
# The form field that shows a violation of an API field (list indexes dropped).
FIELD_OF = {
    "authentication": "auth_method",
    "authentication.api_key.header_name": "api_key_header",
    "authentication.api_key.header_value": "api_key_value",
    "authentication.basic.username": "basic_username",
    "authentication.basic.password": "basic_password",
    "authentication.oauth2.token_url": "oauth2_token_url",
    "authentication.oauth2.client_id": "oauth2_client_id",
    "authentication.oauth2.client_secret": "oauth2_client_secret",
    "authentication.oauth2.scopes": "oauth2_scopes",
    "authentication.oauth2.audience": "oauth2_audience",
    "authentication.oauth2.client_authentication": "oauth2_client_auth",
    "tls.client_certificate_pem": "tls_client_certificate_pem",
    "tls.client_key_pem": "tls_client_key_pem",
    "tls.ca_pem": "tls_ca_pem",
}
RETYPE = "Enter it again: a value typed here is never shown back."


def posted(name: str, value: str) -> str:
    """A posted value as the spec takes it: secrets exactly as typed (a space may belong to a
    password), PEM with the line ends browsers send (CRLF) made plain, the rest trimmed."""
    if name in PEM_FIELDS:
        value = value.replace("\r\n", "\n").strip()
        return value + "\n" if value and not is_placeholder(value) else value
    return value if name in SECRET_FIELDS else value.strip()


def normalized(values: Mapping[str, str]) -> dict[str, str]:
    """``values`` as if posted: what the form shows compares with what comes back."""
    return {name: posted(name, value) for name, value in values.items()}


def shown_values(spec: EndpointSpec) -> dict[str, str]:
    """What the form shows for ``spec``: write-only values as the mask."""
    values = {"auth_method": "none", "oauth2_client_auth": OAuth2ClientAuth.BASIC.value}
    auth = spec.auth
    if isinstance(auth, ApiKeyAuth):
        values |= {"auth_method": "api_key", "api_key_header": auth.header_name}
        values["api_key_value"] = MASK
    elif isinstance(auth, BasicAuth):
        values |= {"auth_method": "basic", "basic_username": auth.username}
        values["basic_password"] = MASK
    elif isinstance(auth, OAuth2Auth):
        values |= {
            "auth_method": "oauth2",
            "oauth2_token_url": auth.token_url,
            "oauth2_client_id": auth.client_id,
            "oauth2_client_secret": MASK,
            "oauth2_scopes": " ".join(auth.scopes),
            "oauth2_audience": auth.audience,
            "oauth2_client_auth": auth.client_auth.value,
        }
    if spec.tls is not None:
        values["tls_client_certificate_pem"] = spec.tls.client_certificate_pem
        values["tls_client_key_pem"] = MASK if spec.tls.client_key_pem else ""
        values["tls_ca_pem"] = spec.tls.ca_pem
    return values


def without_typed_secrets(values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``values`` fit to show again after errors: each typed secret blanked (the mask stays,
    it reveals nothing), and a note, by field, for each that has to be typed again."""
    kept = dict(values)
    notes: dict[str, str] = {}
    for name in SECRET_FIELDS:
        value = kept.get(name, "")
        if value and not is_placeholder(value):
            kept[name] = ""
            notes[name] = RETYPE
    return kept, notes


def spec_values(values: Mapping[str, str]) -> tuple[dict[str, Any], list[FieldViolation]]:
    """The form's ``auth`` and ``tls`` as EndpointSpec fields, and the choices that are none
    of the form's (the service checks everything else)."""
    bad: list[FieldViolation] = []
    auth = _auth(values, bad)
    cert, key, ca = (values.get(name, "") for name in PEM_FIELDS)
    tls = EndpointTls(client_certificate_pem=cert, client_key_pem=key, ca_pem=ca)
    return {"auth": auth, "tls": tls if cert or key or ca else None}, bad


def _auth(values: Mapping[str, str], bad: list[FieldViolation]) -> EndpointAuth | None:
    method = values.get("auth_method") or "none"
    get = values.get
    if method == "api_key":
        return ApiKeyAuth(
            header_name=get("api_key_header", ""), header_value=get("api_key_value", "")
        )
    if method == "basic":
        return BasicAuth(username=get("basic_username", ""), password=get("basic_password", ""))
    if method == "oauth2":
        try:
            client_auth = OAuth2ClientAuth(get("oauth2_client_auth") or OAuth2ClientAuth.BASIC)
        except ValueError:
            bad.append(
                FieldViolation("authentication.oauth2.client_authentication", "is not a choice")
            )
            client_auth = OAuth2ClientAuth.BASIC
        return OAuth2Auth(
            token_url=get("oauth2_token_url", ""),
            client_id=get("oauth2_client_id", ""),
            client_secret=get("oauth2_client_secret", ""),
            scopes=tuple(get("oauth2_scopes", "").split()),
            audience=get("oauth2_audience", ""),
            client_auth=client_auth,
        )
    if method != "none":
        bad.append(FieldViolation("authentication", "is not an authentication method"))
    return None


def auth_summary(auth: EndpointAuth | None) -> Html:
    """The method and what identifies it, never its secret."""
    if isinstance(auth, ApiKeyAuth):
        return render("API key in the <code>{h}</code> header", h=auth.header_name)
    if isinstance(auth, BasicAuth):
        return render("HTTP basic as <code>{u}</code>", u=auth.username)
    if isinstance(auth, OAuth2Auth):
        scopes = render(", scopes <code>{s}</code>", s=" ".join(auth.scopes)) if auth.scopes else ""
        return render(
            "OAuth2 client credentials: client <code>{c}</code> at <code>{u}</code>{s}",
            c=auth.client_id,
            u=auth.token_url,
            s=scopes,
        )
    return esc("none")


def certificate_summary(tls: EndpointTls | None, now: float) -> Html:
    """Whether convoyd presents a client certificate, and until when it is valid."""
    if tls is None or not tls.client_certificate_pem:
        return esc("none")
    not_after = tls.client_certificate_not_after
    expired = not_after is not None and not_after <= now
    return render(
        "presented on the TLS handshake; {state} {t}",
        state="expired" if expired else "expires",
        t=when(not_after, "at an unknown time"),
    )


def ca_summary(tls: EndpointTls | None) -> Html:
    if tls is None or not tls.ca_pem:
        return esc("the system's trust store")
    count = tls.ca_pem.count("-----BEGIN CERTIFICATE-----")
    return esc(f"only the endpoint's own CA ({count} certificate{'' if count == 1 else 's'})")
