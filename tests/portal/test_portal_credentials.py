"""The endpoint form's authentication and TLS settings (manage links), against the real App:
each method set and replaced through the form, the masks a page shows sent back keep the
stored values by the service's rules, and no write-only value is in any page or API answer."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from convoyd.app import App
from convoyd.client import Client
from convoyd.core.model import ApiKeyAuth, BasicAuth, OAuth2Auth, OAuth2ClientAuth
from convoyd.portal.credentials import RETYPE
from convoyd.v1 import endpoint_pb2
from tests.conftest import Running
from tests.pki import EndpointPem, endpoint_pem
from tests.portal.test_portal_pages import Browser

pytestmark = pytest.mark.both_stores

PASSWORD = "basic-pw-" + "b" * 24
NEW_PASSWORD = "basic-pw-new-" + "n" * 24
CLIENT_SECRET = "oauth2-secret-" + "o" * 24
API_KEY = "api-key-" + "a" * 24
URL = "https://hooks.invalid/in"


class FormReader(HTMLParser):
    """The values a browser would post from a page's form: inputs, textareas, selections."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name") and a.get("type") != "hidden":
            self.values[a["name"]] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self.values[self._textarea] = ""
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select is not None:
            self._option(a)

    def _option(self, a: dict[str, str]) -> None:
        """The selected option, else the first (as browsers do)."""
        assert self._select is not None
        if "selected" in a or self._select not in self.values:
            self.values[self._select] = a["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.values[self._textarea] += data


def form_of(page: str) -> dict[str, str]:
    reader = FormReader()
    reader.feed(page)
    return reader.values


def write_only(pem: EndpointPem) -> list[str]:
    """Every write-only value of these tests, and a line from inside each private key."""
    keys = [pem.client_key, pem.other_key]
    return [
        PASSWORD,
        NEW_PASSWORD,
        CLIENT_SECRET,
        API_KEY,
        *keys,
        *(k.splitlines()[2] for k in keys),
    ]


@pytest.fixture
def pem(tmp_path: Path) -> EndpointPem:
    return endpoint_pem(tmp_path)


async def _endpoint_id(client: Client, name: str) -> str:
    (found,) = [
        e for e in (await client.list_endpoints(owner_id="acme")).endpoints if e.name == name
    ]
    return found.id


def _utc(ts: float | None) -> str:
    assert ts is not None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def test_each_method_is_set_and_replaced_through_the_form(
    delivering: tuple[App, Running], client: Client, pem: EndpointPem
) -> None:
    app, running = delivering
    link = await client.create_portal_link(owner_id="acme", can_manage_endpoints=True)
    browser = Browser(running.http_url)
    pages: list[str] = []

    async def get(path: str) -> str:
        status, text = await browser.get(path)
        assert status == 200, (path, text)
        pages.append(text)
        return text

    async def post(path: str, values: dict[str, str], expected: int = 303) -> str:
        status, text = await browser.post(path, values)
        assert status == expected, text
        pages.append(text)
        return text

    try:
        assert (await browser.open(link.url)).status == 200
        new = form_of(await get("/portal/endpoints/new"))
        assert new["auth_method"] == "none" and new["oauth2_client_auth"] == "basic"
        new |= {
            "url": URL,
            "name": "mtls",
            "auth_method": "basic",
            "basic_username": "bob",
            "basic_password": PASSWORD,
            # As a browser sends a textarea: CRLF line ends.
            "tls_client_certificate_pem": pem.client_certificate.replace("\n", "\r\n"),
            "tls_client_key_pem": pem.client_key,
            "tls_ca_pem": pem.ca,
        }
        await post("/portal/endpoints/new", new)
        created = await get(browser.location)
        assert "Endpoint created" in created
        endpoint_id = await _endpoint_id(client, "mtls")
        base = f"/portal/endpoints/{endpoint_id}"
        stored = (await app.endpoints.get(endpoint_id)).spec
        assert stored.auth == BasicAuth(username="bob", password=PASSWORD)
        assert stored.tls is not None and stored.tls.client_key_pem == pem.client_key
        assert stored.tls.client_certificate_pem == pem.client_certificate

        details = await get(base)
        assert "HTTP basic as <code>bob</code>" in details
        assert _utc(stored.tls.client_certificate_not_after) in details
        assert "only the endpoint&#x27;s own CA (1 certificate)" in details

        # The edit page as read, sent back with another name: the masks keep what is stored.
        shown = form_of(await get(f"{base}/edit"))
        assert shown["basic_password"] == shown["tls_client_key_pem"] == "********"
        assert shown["tls_client_certificate_pem"] == pem.client_certificate
        before = await app.endpoints.get(endpoint_id)
        await post(f"{base}/edit", {**shown, "name": "renamed"})
        after = await app.endpoints.get(endpoint_id)
        assert after.spec.name == "renamed"
        assert (after.spec.auth, after.spec.tls) == (before.spec.auth, before.spec.tls)
        # Nothing changed at all: no update.
        await post(f"{base}/edit", form_of(await get(f"{base}/edit")))
        assert (await app.endpoints.get(endpoint_id)).updated_at == after.updated_at

        # A new password for the same user; then a new user with the masked password: refused.
        shown = form_of(await get(f"{base}/edit"))
        await post(f"{base}/edit", {**shown, "basic_password": NEW_PASSWORD})
        assert (await app.endpoints.get(endpoint_id)).spec.auth == BasicAuth(
            username="bob", password=NEW_PASSWORD
        )
        refused = await post(f"{base}/edit", {**shown, "basic_username": "eve"}, 400)
        assert "masked placeholder" in refused and 'field-error"' in refused

        # OAuth2, then new scopes with the masked secret, then a new client id without one.
        oauth2 = {
            "auth_method": "oauth2",
            "oauth2_token_url": "https://auth.invalid/token",
            "oauth2_client_id": "convoyd",
            "oauth2_client_secret": CLIENT_SECRET,
            "oauth2_scopes": "hooks:write  read",
            "oauth2_audience": "https://api.invalid",
            "oauth2_client_auth": "body",
        }
        await post(f"{base}/edit", {**shown, **oauth2})
        expected = OAuth2Auth(
            token_url="https://auth.invalid/token",
            client_id="convoyd",
            client_secret=CLIENT_SECRET,
            scopes=("hooks:write", "read"),
            audience="https://api.invalid",
            client_auth=OAuth2ClientAuth.BODY,
        )
        assert (await app.endpoints.get(endpoint_id)).spec.auth == expected
        shown = form_of(await get(f"{base}/edit"))
        assert shown["oauth2_client_secret"] == "********"
        assert shown["oauth2_scopes"] == "hooks:write read"
        await post(f"{base}/edit", {**shown, "oauth2_scopes": "read"})
        kept = (await app.endpoints.get(endpoint_id)).spec.auth
        assert isinstance(kept, OAuth2Auth) and kept.client_secret == CLIENT_SECRET
        assert kept.scopes == ("read",)
        refused = await post(f"{base}/edit", {**shown, "oauth2_client_id": "other"}, 400)
        assert "kept only for the same token_url and client_id" in refused
        assert form_of(refused)["oauth2_client_secret"] == "********"

        # An API key; the method select decides, whatever the other methods' fields hold.
        await post(
            f"{base}/edit",
            {**shown, "auth_method": "api_key", "api_key_header": "X-Api-Key"}
            | {"api_key_value": API_KEY},
        )
        stored_key = ApiKeyAuth(header_name="X-Api-Key", header_value=API_KEY)
        assert (await app.endpoints.get(endpoint_id)).spec.auth == stored_key
        assert "API key in the <code>X-Api-Key</code> header" in await get(base)

        # A renewed certificate for the same key keeps the stored key; another key's needs it.
        shown = form_of(await get(f"{base}/edit"))
        assert shown["api_key_value"] == "********"
        await post(f"{base}/edit", {**shown, "tls_client_certificate_pem": pem.renewed_certificate})
        renewed = (await app.endpoints.get(endpoint_id)).spec.tls
        assert renewed is not None and renewed.client_key_pem == pem.client_key
        assert renewed.client_certificate_not_after != stored.tls.client_certificate_not_after
        assert _utc(renewed.client_certificate_not_after) in await get(base)
        refused = await post(
            f"{base}/edit", {**shown, "tls_client_certificate_pem": pem.other_certificate}, 400
        )
        assert "does not belong to the new" in refused
        assert form_of(refused)["tls_client_key_pem"] == "********"

        # Removing both.
        shown = form_of(await get(f"{base}/edit"))
        empty_tls = dict.fromkeys(("tls_client_certificate_pem", "tls_client_key_pem"), "")
        await post(f"{base}/edit", {**shown, **empty_tls, "tls_ca_pem": "", "auth_method": "none"})
        gone = (await app.endpoints.get(endpoint_id)).spec
        assert gone.auth is None and gone.tls is None
        details = await get(base)
        assert "Authentication</dt><dd>none" in details
        assert "the system&#x27;s trust store" in details
    finally:
        await browser.close()

    answers = [await client.get_endpoint(endpoint_id), *(await client.list_endpoints()).endpoints]
    seen = "\n".join(pages) + "\n".join(str(a) for a in answers)
    assert [v for v in write_only(pem) if v in seen] == []


async def test_a_form_with_errors_never_shows_a_typed_secret(
    delivering: tuple[App, Running], client: Client, pem: EndpointPem
) -> None:
    _, running = delivering
    link = await client.create_portal_link(owner_id="acme", can_manage_endpoints=True)
    browser = Browser(running.http_url)
    try:
        await browser.open(link.url)
        await browser.get("/portal/endpoints/new")
        typed = {
            "url": "ftp://hooks.invalid/in",
            "rate_limit": "0",
            "auth_method": "oauth2",
            "oauth2_token_url": "https://auth.invalid/token",
            "oauth2_client_id": "convoyd",
            "oauth2_client_secret": CLIENT_SECRET,
            # The other methods' fields are not used, and not shown back either.
            "basic_password": PASSWORD,
            "api_key_value": API_KEY,
            "tls_client_certificate_pem": pem.client_certificate,
            "tls_client_key_pem": pem.client_key,
        }
        status, text = await browser.post("/portal/endpoints/new", typed)
    finally:
        await browser.close()
    assert status == 400 and "must be an http or https URL" in text
    shown = form_of(text)
    assert shown["oauth2_client_id"] == "convoyd"  # what is not write-only stays
    assert shown["tls_client_certificate_pem"].strip() == pem.client_certificate.strip()
    for name in ("oauth2_client_secret", "basic_password", "api_key_value", "tls_client_key_pem"):
        assert shown[name] == "", name
    assert text.count(RETYPE.replace("'", "&#x27;")) == 4
    assert [v for v in write_only(pem) if v in text] == []
    assert (await client.list_endpoints(owner_id="acme")).endpoints == []


async def test_a_view_link_sees_the_method_and_never_a_secret(
    delivering: tuple[App, Running], client: Client, pem: EndpointPem
) -> None:
    _, running = delivering
    endpoint = await client.create_endpoint(
        endpoint_pb2.Endpoint(
            url=URL,
            owner_id="acme",
            authentication=endpoint_pb2.EndpointAuthentication(
                oauth2=endpoint_pb2.OAuth2ClientCredentials(
                    token_url="https://auth.invalid/token",
                    client_id="convoyd",
                    client_secret=CLIENT_SECRET,
                    scopes=["hooks"],
                )
            ),
            tls=endpoint_pb2.EndpointTls(
                client_certificate_pem=pem.client_certificate, client_key_pem=pem.client_key
            ),
        )
    )
    link = await client.create_portal_link(owner_id="acme")
    browser = Browser(running.http_url)
    try:
        await browser.open(link.url)
        status, text = await browser.get(f"/portal/endpoints/{endpoint.id}")
        edit_status, _ = await browser.get(f"/portal/endpoints/{endpoint.id}/edit")
    finally:
        await browser.close()
    assert status == 200 and edit_status == 403
    assert "OAuth2 client credentials: client <code>convoyd</code>" in text
    assert "scopes <code>hooks</code>" in text and "expires <time" in text
    assert [v for v in write_only(pem) if v in text] == []
