"""Endpoint authentication through the whole daemon: OAuth2 client credentials, HTTP basic and
mutual TLS, against an aiohttp token server and receivers on 127.0.0.1 that demand them.

The key cases run twice: with the sender in the daemon's process and with one sender worker
process (as in production), since the token cache stays in the daemon while the requests and
TLS handshakes happen in the worker.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from google.protobuf import duration_pb2

from convoyd.app import App
from convoyd.client import Client, event_request
from convoyd.settings import DeliverySettings
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import running_app
from tests.pki import make_pki
from tests.receivers import Receiver, eventually

Make = Callable[..., Awaitable[Receiver]]
OAuth2 = pb.OAuth2ClientCredentials
CLIENT_ID = "convoyd client"
SECRET = "s3cr:t/+ &x-do-not-leak"
PASSWORD = "pässword-do-not-leak"
FAST_RETRIES = pb.RetryPolicy(
    schedule=pb.ScheduleRetry(delays=[duration_pb2.Duration(nanos=50_000_000)] * 3), jitter=0.0
)
MODES = {"in_process": 0, "workers": 1}


@dataclass
class TokenServer:
    """An OAuth2 token endpoint: checks the client's credentials the way ``client_auth`` says
    and grants tok-1, tok-2, ...; ``valid`` is the receivers' check of a bearer token."""

    client_auth: str = "basic"
    expires_in: int | None = 3600
    refuse: bool = False
    grants: int = 0
    forms: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/oauth/token"

    def credentials(self, **fields: object) -> pb.EndpointAuthentication:
        mode = (
            OAuth2.CLIENT_AUTHENTICATION_BODY
            if self.client_auth == "body"
            else OAuth2.CLIENT_AUTHENTICATION_UNSPECIFIED  # basic, the default
        )
        return pb.EndpointAuthentication(
            oauth2=OAuth2(
                token_url=self.url,
                client_id=CLIENT_ID,
                client_secret=SECRET,
                client_authentication=mode,
                **fields,  # type: ignore[arg-type]
            )
        )

    def valid(self, headers: Mapping[str, str]) -> bool:
        value = headers.get("Authorization", "")
        token = value.removeprefix("Bearer ")
        return value.startswith("Bearer ") and token in self.issued and token not in self.revoked

    def _client_is_known(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        if self.client_auth == "body":
            return not header and (form.get("client_id"), form.get("client_secret")) == (
                CLIENT_ID,
                SECRET,
            )
        if not header.startswith("Basic ") or "client_secret" in form:
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, SECRET)

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(parse_qsl((await request.read()).decode()))
        self.forms.append(form)
        if (
            form.get("grant_type") != "client_credentials"
            or request.headers.get("Accept") != "application/json"
            or request.content_type != "application/x-www-form-urlencoded"
        ):
            return web.json_response({"error": "invalid_request"}, status=400)
        if self.refuse or not self._client_is_known(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        self.grants += 1
        token = f"tok-{self.grants}"
        self.issued.append(token)
        answer: dict[str, object] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return web.json_response(answer)

    async def start(self) -> TokenServer:
        app = web.Application()
        app.router.add_post("/oauth/token", self._token)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        return self


@pytest.fixture
async def tokens() -> AsyncIterator[Callable[..., Awaitable[TokenServer]]]:
    made: list[TokenServer] = []

    async def make(**kwargs: object) -> TokenServer:
        server = await TokenServer(**kwargs).start()  # type: ignore[arg-type]
        made.append(server)
        return server

    yield make
    for server in made:
        assert server.server is not None
        await server.server.close()


@contextlib.asynccontextmanager
async def convoyd(data_dir: Path, workers: int) -> AsyncIterator[tuple[App, Client]]:
    """convoyd delivering to loopback, and a client of it."""
    delivery = DeliverySettings(allow_cidrs=("127.0.0.0/8",), sender_workers=workers)
    async with (
        running_app(data_dir, delivery=delivery) as (app, running),
        Client(running.grpc_target, token=running.token) as client,
    ):
        yield app, client


@pytest.fixture(params=list(MODES))
async def daemon(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[App, Client]]:
    """Sending in the daemon's process, or through one sender worker."""
    async with convoyd(tmp_path / "data", MODES[request.param]) as pair:
        yield pair


@pytest.fixture
async def in_process(tmp_path: Path) -> AsyncIterator[tuple[App, Client]]:
    async with convoyd(tmp_path / "data", 0) as pair:
        yield pair


async def deliver(client: Client, endpoint_id: str, n: int = 1) -> list[dpb.Delivery]:
    """Sends ``n`` events at once to the endpoint; the deliveries once they are final."""
    response = await client.batch_create_events(
        [event_request(event_type="t", data={"n": i}, endpoint_ids=[endpoint_id]) for i in range(n)]
    )
    final = (dpb.DELIVERY_STATUS_SUCCESS, dpb.DELIVERY_STATUS_FAILURE)
    out = []
    for event in response.events:
        (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries

        async def done(delivery_id: str = delivery.id) -> bool:
            return (await client.get_delivery(delivery_id)).status in final

        await eventually(done)
        out.append(await client.get_delivery(delivery.id))
    return out


def logged_headers(attempt: dpb.DeliveryAttempt) -> dict[str, str]:
    return {h.name.lower(): h.value for h in attempt.request_headers}


def server_context(directory: Path) -> tuple[ssl.SSLContext, dict[str, str]]:
    """A receiver's TLS: its certificate for 127.0.0.1, client certificates of the test CA
    required; and the PEM texts of the CA and the client certificate and key."""
    pki = make_pki(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki["ca.crt"])
    context.load_cert_chain(pki["server.crt"], pki["server.key"])
    context.verify_mode = ssl.CERT_REQUIRED
    return context, {name: path.read_text() for name, path in pki.items()}


# -- OAuth2 ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_auth", ["basic", "body"])
async def test_five_deliveries_use_one_fetched_token(
    daemon: tuple[App, Client],
    tokens: Callable[..., Awaitable[TokenServer]],
    receivers: Make,
    client_auth: str,
) -> None:
    _, client = daemon
    server = await tokens(client_auth=client_auth)
    receiver = await receivers(authorize=server.valid)
    ep = await client.create_endpoint(
        pb.Endpoint(
            url=receiver.url,
            authentication=server.credentials(
                scopes=["hooks.write", "hooks.read"], audience="https://hooks.invalid"
            ),
        )
    )
    deliveries = await deliver(client, ep.id, 5)
    assert [d.status for d in deliveries] == [dpb.DELIVERY_STATUS_SUCCESS] * 5
    assert server.grants == 1
    assert [r.headers["Authorization"] for r in receiver.requests] == ["Bearer tok-1"] * 5
    (form,) = server.forms
    assert form["scope"] == "hooks.write hooks.read"
    assert form["audience"] == "https://hooks.invalid"
    for d in deliveries:
        (attempt,) = (await client.list_delivery_attempts(d.id)).attempts
        assert logged_headers(attempt)["authorization"] == "[redacted]"
        assert "tok-1" not in str(attempt) and SECRET not in str(attempt)


async def test_a_token_the_receiver_refuses_is_replaced_and_the_attempt_sent_again(
    daemon: tuple[App, Client], tokens: Callable[..., Awaitable[TokenServer]], receivers: Make
) -> None:
    _, client = daemon
    server = await tokens()
    receiver = await receivers(authorize=server.valid)
    ep = await client.create_endpoint(
        pb.Endpoint(url=receiver.url, authentication=server.credentials())
    )
    (first,) = await deliver(client, ep.id)
    assert first.status == dpb.DELIVERY_STATUS_SUCCESS
    server.revoked.add("tok-1")  # the receiver stops taking it before it expires

    (second,) = await deliver(client, ep.id)
    assert (second.status, second.attempt_count) == (dpb.DELIVERY_STATUS_SUCCESS, 1)
    assert server.grants == 2
    assert [r.headers["Authorization"] for r in receiver.requests] == [
        "Bearer tok-1",
        "Bearer tok-1",  # refused: 401
        "Bearer tok-2",
    ]
    (attempt,) = (await client.list_delivery_attempts(second.id)).attempts
    assert (attempt.response_status, attempt.result) == (200, dpb.ATTEMPT_RESULT_SUCCESS)


async def test_an_expired_token_is_fetched_anew(
    in_process: tuple[App, Client], tokens: Callable[..., Awaitable[TokenServer]], receivers: Make
) -> None:
    app, client = in_process
    now = [0.0]
    app.engine._tokens._clock = lambda: now[0]  # the cache's monotonic clock, moved by the test
    server = await tokens(expires_in=600)
    receiver = await receivers(authorize=server.valid)
    ep = await client.create_endpoint(
        pb.Endpoint(url=receiver.url, authentication=server.credentials())
    )
    await deliver(client, ep.id)
    now[0] = 539.0  # before the margin (60 s ahead of the end): still the same token
    await deliver(client, ep.id)
    now[0] = 540.0
    await deliver(client, ep.id)
    assert server.grants == 2
    assert [r.headers["Authorization"] for r in receiver.requests] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_a_refusing_token_endpoint_is_a_recorded_retried_failure(
    daemon: tuple[App, Client],
    tokens: Callable[..., Awaitable[TokenServer]],
    receivers: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    app, client = daemon
    server = await tokens(refuse=True)
    receiver = await receivers(authorize=server.valid)
    ep = await client.create_endpoint(
        pb.Endpoint(
            url=receiver.url, authentication=server.credentials(), retry_policy=FAST_RETRIES
        )
    )
    (delivery,) = await deliver(client, ep.id)
    assert (delivery.status, delivery.attempt_count) == (dpb.DELIVERY_STATUS_FAILURE, 4)
    attempts = (await client.list_delivery_attempts(delivery.id)).attempts
    assert [(a.result, a.response_status, a.error) for a in attempts] == [
        (dpb.ATTEMPT_RESULT_NETWORK_ERROR, 0, "token endpoint answered 401 (invalid_client)")
    ] * 4
    assert len(server.forms) == 4  # every attempt asked again
    fetches = app.metrics.registry.get_sample_value
    assert fetches("convoyd_oauth2_token_fetches_total", {"outcome": "refused"}) == 4
    assert receiver.requests == []
    breaker = (await client.get_endpoint(ep.id)).circuit_breaker
    assert (breaker.window_attempts, breaker.failure_rate) == (4, 1.0)
    everything = str(attempts) + str(delivery) + caplog.text
    assert SECRET not in everything
    assert "invalid_client" in delivery.status_reason


# -- basic and mutual TLS ----------------------------------------------------------------


async def test_basic_credentials_arrive_with_every_request(
    daemon: tuple[App, Client], receivers: Make
) -> None:
    _, client = daemon
    expected = "Basic " + base64.b64encode(f"hooks:{PASSWORD}".encode()).decode()
    receiver = await receivers(authorize=lambda h: h.get("Authorization") == expected)
    ep = await client.create_endpoint(
        pb.Endpoint(
            url=receiver.url,
            authentication=pb.EndpointAuthentication(
                basic=pb.BasicAuthentication(username="hooks", password=PASSWORD)
            ),
        )
    )
    deliveries = await deliver(client, ep.id, 2)
    assert [d.status for d in deliveries] == [dpb.DELIVERY_STATUS_SUCCESS] * 2
    assert [r.headers["Authorization"] for r in receiver.requests] == [expected] * 2
    (attempt,) = (await client.list_delivery_attempts(deliveries[0].id)).attempts
    assert logged_headers(attempt)["authorization"] == "[redacted]"
    assert PASSWORD not in str(attempt) and expected not in str(attempt)


async def test_the_mtls_receiver_sees_the_client_certificate(
    daemon: tuple[App, Client],
    tokens: Callable[..., Awaitable[TokenServer]],
    receivers: Make,
    tmp_path: Path,
) -> None:
    app, client = daemon
    context, pem = server_context(tmp_path)
    server = await tokens()  # mutual TLS goes with a header method: OAuth2 here
    receiver = await receivers(ssl=context, authorize=server.valid)
    ep = await client.create_endpoint(
        pb.Endpoint(
            url=receiver.url,
            authentication=server.credentials(),
            tls=pb.EndpointTls(
                client_certificate_pem=pem["client.crt"],
                client_key_pem=pem["client.key"],
                ca_pem=pem["ca.crt"],
            ),
        )
    )
    assert receiver.url.startswith("https://127.0.0.1:")
    deliveries = [*await deliver(client, ep.id), *await deliver(client, ep.id)]
    assert [d.status for d in deliveries] == [dpb.DELIVERY_STATUS_SUCCESS] * 2
    assert [r.peer_subject for r in receiver.requests] == ["CN=client"] * 2
    # One SSLContext for the endpoint's material: the connection was kept alive and reused.
    assert len({r.peer_port for r in receiver.requests}) == 1
    assert server.grants == 1
    # The test CA's certificates last two days: expiring, and the soonest not-after shows.
    metric = app.metrics.registry.get_sample_value
    assert metric("convoyd_client_certificates", {"state": "expiring"}) == 1
    assert metric("convoyd_client_certificates", {"state": "valid"}) == 0
    not_after = (await client.get_endpoint(ep.id)).tls.client_certificate_not_after.seconds
    assert metric("convoyd_client_certificate_earliest_expiry_timestamp_seconds") == not_after
    assert metric("convoyd_oauth2_token_fetches_total", {"outcome": "fetched"}) == 1


async def test_without_the_endpoint_ca_the_receiver_is_not_trusted(
    in_process: tuple[App, Client], receivers: Make, tmp_path: Path
) -> None:
    _, client = in_process
    context, pem = server_context(tmp_path)
    receiver = await receivers(ssl=context)
    ep = await client.create_endpoint(
        pb.Endpoint(
            url=receiver.url,
            retry_policy=pb.RetryPolicy(schedule=pb.ScheduleRetry(), jitter=0.0),
            tls=pb.EndpointTls(
                client_certificate_pem=pem["client.crt"], client_key_pem=pem["client.key"]
            ),
        )
    )
    (delivery,) = await deliver(client, ep.id)
    assert delivery.status == dpb.DELIVERY_STATUS_FAILURE
    (attempt,) = (await client.list_delivery_attempts(delivery.id)).attempts
    assert attempt.error.startswith("TLS certificate verification failed")
    assert receiver.requests == []


async def test_a_receiver_refusing_every_token_gets_one_new_token_per_attempt(
    in_process: tuple[App, Client], tokens: Callable[..., Awaitable[TokenServer]], receivers: Make
) -> None:
    _, client = in_process
    server = await tokens()
    receiver = await receivers(authorize=lambda headers: False)
    ep = await client.create_endpoint(
        pb.Endpoint(
            url=receiver.url,
            authentication=server.credentials(),
            retry_policy=pb.RetryPolicy(schedule=pb.ScheduleRetry(), jitter=0.0),
        )
    )
    (delivery,) = await deliver(client, ep.id)
    assert (delivery.status, delivery.last_http_status) == (dpb.DELIVERY_STATUS_FAILURE, 401)
    (attempt,) = (await client.list_delivery_attempts(delivery.id)).attempts
    assert (attempt.result, attempt.response_status) == (dpb.ATTEMPT_RESULT_HTTP_ERROR, 401)
    assert [r.headers["Authorization"] for r in receiver.requests] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    assert server.grants == 2
