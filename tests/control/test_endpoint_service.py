"""EndpointService over the real gRPC server on loopback, with real SQLite underneath."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from convoyd.app import App
from convoyd.client import Client
from convoyd.v1 import delivery_pb2, delivery_pb2_grpc, endpoint_pb2, endpoint_pb2_grpc
from tests.conftest import Running, running_app
from tests.pki import EndpointPem, endpoint_pem

pb = endpoint_pb2


def violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return {v.field: v.description for v in bad.field_violations}
    return {}


def make_api(app: Running, channel: grpc.aio.Channel) -> Any:
    """EndpointService's RPCs as coroutines that carry the admin token."""
    stub = endpoint_pb2_grpc.EndpointServiceStub(channel)

    class Api:
        running = app
        raw = stub

        async def __getattr__(self, name: str) -> Any:  # pragma: no cover
            raise AttributeError(name)

    def call(name: str) -> Any:
        method = getattr(stub, name)

        async def invoke(request: Any) -> Any:
            return await method(request, metadata=app.metadata, timeout=10)

        return invoke

    for name in (
        "CreateEndpoint",
        "GetEndpoint",
        "ListEndpoints",
        "UpdateEndpoint",
        "DeleteEndpoint",
        "PauseEndpoint",
        "ResumeEndpoint",
        "ActivateEndpoint",
        "RotateEndpointSecret",
        "GetEndpointSecret",
    ):
        setattr(Api, name, staticmethod(call(name)))
    return Api


@pytest.fixture
async def api(app: Running) -> Any:
    async with app.channel() as channel:
        yield make_api(app, channel)


def new_endpoint(**fields: Any) -> pb.CreateEndpointRequest:
    fields.setdefault("url", "https://hooks.example.com/in")
    return pb.CreateEndpointRequest(endpoint=pb.Endpoint(**fields))


async def test_create_get_returns_the_endpoint_with_secret_value_only_on_create(api: Any) -> None:
    created = await api.CreateEndpoint(
        new_endpoint(
            name="orders",
            owner_id="acme",
            event_types=["order.created"],
            http_timeout=duration_pb2.Duration(seconds=5),
            authentication=pb.EndpointAuthentication(
                api_key=pb.ApiKeyAuthentication(header_name="X-Api-Key", header_value="s3cr3t")
            ),
            headers={"X-Tenant": "acme"},
        )
    )
    assert created.id.startswith("ep_")
    assert created.status == pb.ENDPOINT_STATUS_ACTIVE
    assert created.signature.scheme == pb.SIGNATURE_SCHEME_STANDARD
    assert len(created.secrets) == 1 and created.secrets[0].value.startswith("whsec_")
    assert created.authentication.api_key.header_value == "********"

    got = await api.GetEndpoint(pb.GetEndpointRequest(endpoint_id=created.id))
    assert got.name == "orders" and got.owner_id == "acme"
    assert got.http_timeout.seconds == 5
    assert got.headers["X-Tenant"] == "acme"
    assert got.secrets[0].id == created.secrets[0].id and got.secrets[0].value == ""
    assert got.authentication.api_key.header_value == "********"


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": ""}, "url"),
        ({"http_timeout": duration_pb2.Duration(seconds=61)}, "http_timeout"),
        ({"headers": {"Content-Length": "1"}}, "headers['Content-Length']"),
        ({"headers": {"X-A": "a\r\nX-Injected: 1"}}, "headers['X-A']"),
        ({"event_types": ["ok", "no spaces"]}, "event_types[1]"),
        ({"signature": pb.SignatureConfig(scheme=99)}, "signature.scheme"),
        ({"ordering": 7}, "ordering"),
        (
            {"retry_policy": pb.RetryPolicy(linear=pb.LinearRetry(max_retries=500))},
            "retry_policy.linear.max_retries",
        ),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    api: Any, fields: dict[str, Any], bad_field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.CreateEndpoint(new_endpoint(**fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field in violations(info.value), violations(info.value)
    assert bad_field in (info.value.details() or "")


async def test_every_bad_field_is_named_at_once(api: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.CreateEndpoint(
            new_endpoint(url="gopher://x", rate_limit_duration=duration_pb2.Duration(seconds=-1))
        )
    assert {"url", "rate_limit_duration"} <= set(violations(info.value))


async def test_unknown_id_is_not_found(api: Any) -> None:
    unknown = "ep_" + "0" * 26  # the shape of an id, never issued (a bad shape: test_ids.py)
    for call, request in (
        (api.GetEndpoint, pb.GetEndpointRequest(endpoint_id=unknown)),
        (api.DeleteEndpoint, pb.DeleteEndpointRequest(endpoint_id=unknown)),
        (api.PauseEndpoint, pb.PauseEndpointRequest(endpoint_id=unknown)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(request)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_is_paged_and_filtered_by_owner(api: Any) -> None:
    ids = {"acme": [], "globex": []}  # type: dict[str, list[str]]
    for i in range(7):
        owner = "acme" if i % 2 == 0 else "globex"
        ep = await api.CreateEndpoint(new_endpoint(owner_id=owner, name=f"e{i}"))
        ids[owner].append(ep.id)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await api.ListEndpoints(
            pb.ListEndpointsRequest(owner_id="acme", page_size=2, page_token=token)
        )
        seen.extend(e.id for e in page.endpoints)
        assert all(e.owner_id == "acme" for e in page.endpoints)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 2
    assert seen == list(reversed(ids["acme"]))  # newest first

    everything = await api.ListEndpoints(pb.ListEndpointsRequest())
    assert len(everything.endpoints) == 7

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.ListEndpoints(pb.ListEndpointsRequest(page_token="garbage!!"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in violations(info.value)


async def test_update_changes_only_the_masked_fields(api: Any) -> None:
    ep = await api.CreateEndpoint(new_endpoint(name="before", description="keep me"))
    updated = await api.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(
                id=ep.id, name="after", url="https://new.example.com/h", description=""
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["name", "url"]),
        )
    )
    assert (updated.name, updated.url, updated.description) == (
        "after",
        "https://new.example.com/h",
        "keep me",
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=pb.Endpoint(id=ep.id),
                update_mask=field_mask_pb2.FieldMask(paths=["status"]),
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "update_mask" in violations(info.value)


async def test_pause_resume_activate_follow_the_state_table(api: Any) -> None:
    ep = await api.CreateEndpoint(new_endpoint())
    paused = await api.PauseEndpoint(
        pb.PauseEndpointRequest(endpoint_id=ep.id, reason="maintenance")
    )
    assert paused.status == pb.ENDPOINT_STATUS_PAUSED
    assert paused.status_reason == "maintenance"
    assert paused.status_changed_at.ToNanoseconds() >= ep.status_changed_at.ToNanoseconds()

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.ActivateEndpoint(pb.ActivateEndpointRequest(endpoint_id=ep.id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "paused" in (info.value.details() or "")

    resumed = await api.ResumeEndpoint(pb.ResumeEndpointRequest(endpoint_id=ep.id))
    assert resumed.status == pb.ENDPOINT_STATUS_ACTIVE
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.ResumeEndpoint(pb.ResumeEndpointRequest(endpoint_id=ep.id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_delete_removes_the_endpoint(api: Any) -> None:
    ep = await api.CreateEndpoint(new_endpoint())
    await api.DeleteEndpoint(pb.DeleteEndpointRequest(endpoint_id=ep.id))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.GetEndpoint(pb.GetEndpointRequest(endpoint_id=ep.id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_rotate_secret_keeps_the_old_one_live_for_its_lifetime(api: Any) -> None:
    ep = await api.CreateEndpoint(new_endpoint())
    rotated = await api.RotateEndpointSecret(
        pb.RotateEndpointSecretRequest(
            endpoint_id=ep.id, old_secret_lifetime=duration_pb2.Duration(seconds=3600)
        )
    )
    assert rotated.secret.value.startswith("whsec_")
    assert [s.id for s in rotated.endpoint.secrets] == [rotated.secret.id, ep.secrets[0].id]
    old = rotated.endpoint.secrets[1]
    assert old.expires_at.seconds - old.created_at.seconds >= 3599

    secrets = await api.GetEndpointSecret(pb.GetEndpointSecretRequest(endpoint_id=ep.id))
    assert [s.value for s in secrets.secrets] == [rotated.secret.value, ep.secrets[0].value]

    now = await api.RotateEndpointSecret(
        pb.RotateEndpointSecretRequest(
            endpoint_id=ep.id, old_secret_lifetime=duration_pb2.Duration()
        )
    )
    assert [s.id for s in now.endpoint.secrets] == [now.secret.id]


async def test_requests_without_a_valid_token_are_unauthenticated(app: Running) -> None:
    async with app.channel() as channel:
        stub = endpoint_pb2_grpc.EndpointServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", "Basic x"),)):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ListEndpoints(pb.ListEndpointsRequest(), metadata=metadata, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

        # Server-streaming RPCs are guarded by the same interceptor.
        watch = delivery_pb2_grpc.DeliveryServiceStub(channel).WatchDeliveries(
            delivery_pb2.WatchDeliveriesRequest(), timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in watch:
                pass
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_needs_no_token_and_reflection_lists_the_services(app: Running) -> None:
    async with app.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reply = await health.Check(
            health_pb2.HealthCheckRequest(service="convoyd.v1.EndpointService"), timeout=10
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        names = set()
        async for response in responses:
            names |= {s.name for s in response.list_services_response.service}
        assert {
            "convoyd.v1.EndpointService",
            "convoyd.v1.EventService",
            "convoyd.v1.DeliveryService",
            "convoyd.v1.PortalService",
        } <= names


# -- ordering --------------------------------------------------------------------------------


async def test_ordering_is_set_at_create_shown_by_reads_and_changed_by_update(api: Any) -> None:
    plain = await api.CreateEndpoint(new_endpoint(name="plain"))
    assert plain.ordering == pb.ORDERING_UNSPECIFIED  # concurrent, as before FIFO existed
    fifo = await api.CreateEndpoint(new_endpoint(name="fifo", ordering=pb.ORDERING_FIFO))
    assert fifo.ordering == pb.ORDERING_FIFO
    got = await api.GetEndpoint(pb.GetEndpointRequest(endpoint_id=fifo.id))
    assert got.ordering == pb.ORDERING_FIFO
    assert not got.HasField("fifo")  # nothing pending: no head to wait behind

    def update(endpoint_id: str, ordering: int) -> pb.UpdateEndpointRequest:
        return pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=endpoint_id, ordering=ordering),
            update_mask=field_mask_pb2.FieldMask(paths=["ordering"]),
        )

    changed = await api.UpdateEndpoint(update(plain.id, pb.ORDERING_FIFO))
    assert changed.ordering == pb.ORDERING_FIFO and changed.name == "plain"
    back = await api.UpdateEndpoint(update(fifo.id, pb.ORDERING_UNSPECIFIED))
    assert back.ordering == pb.ORDERING_UNSPECIFIED
    listed = await api.ListEndpoints(pb.ListEndpointsRequest())
    assert {e.id: e.ordering for e in listed.endpoints} == {
        plain.id: pb.ORDERING_FIFO,
        fifo.id: pb.ORDERING_UNSPECIFIED,
    }

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.UpdateEndpoint(update(plain.id, 7))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(info.value) == {"ordering": "unknown value 7"}
    unchanged = await api.GetEndpoint(pb.GetEndpointRequest(endpoint_id=plain.id))
    assert unchanged.ordering == pb.ORDERING_FIFO


async def test_reads_show_what_a_fifo_endpoint_waits_behind(api: Any) -> None:
    # Nothing answers at .invalid: every delivery stays pending (retrying) during the test.
    fifo = await api.CreateEndpoint(
        new_endpoint(url="https://hooks.invalid/fifo", ordering=pb.ORDERING_FIFO)
    )
    plain = await api.CreateEndpoint(new_endpoint(url="https://hooks.invalid/plain"))
    running = api.running
    async with Client(running.grpc_target, token=running.token) as client:
        firsts = []
        for n in range(3):
            event = await client.create_event(
                endpoint_ids=[fifo.id, plain.id], event_type="order.paid", data={"n": n}
            )
            found = await client.list_deliveries(event_id=event.id, endpoint_id=fifo.id)
            firsts.append(found.deliveries[0].id)

    got = await api.GetEndpoint(pb.GetEndpointRequest(endpoint_id=fifo.id))
    assert got.fifo == pb.FifoQueue(head_delivery_id=firsts[0], waiting=2)
    listed = {e.id: e for e in (await api.ListEndpoints(pb.ListEndpointsRequest())).endpoints}
    assert listed[fifo.id].fifo == got.fifo
    assert not listed[plain.id].HasField("fifo")  # concurrent: no queue to show
    plain_got = await api.GetEndpoint(pb.GetEndpointRequest(endpoint_id=plain.id))
    assert not plain_got.HasField("fifo")


# -- authentication methods and TLS settings -------------------------------------------------

MASK = "********"
# The write-only field of each method, by its name in the API (and in the domain type).
WRITE_ONLY = {"api_key": "header_value", "basic": "password", "oauth2": "client_secret"}
AUTH = {
    "api_key": pb.EndpointAuthentication(
        api_key=pb.ApiKeyAuthentication(header_name="X-Api-Key", header_value="k3y-value")
    ),
    "basic": pb.EndpointAuthentication(
        basic=pb.BasicAuthentication(username="convoyd", password="pa55word")
    ),
    "oauth2": pb.EndpointAuthentication(
        oauth2=pb.OAuth2ClientCredentials(
            token_url="https://auth.invalid/oauth/token",
            client_id="cid",
            client_secret="client-s3cret",
            scopes=["hooks:write", "read"],
            audience="https://api.invalid",
            client_authentication=pb.OAuth2ClientCredentials.CLIENT_AUTHENTICATION_BODY,
        )
    ),
}


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> EndpointPem:
    return endpoint_pem(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[App, Any]]:
    """The API and the App behind it, whose store holds what reads mask."""
    async with running_app(tmp_path / "data") as (instance, running), running.channel() as ch:
        yield instance, make_api(running, ch)


def tls(pem: EndpointPem, **fields: Any) -> pb.EndpointTls:
    values = {
        "client_certificate_pem": pem.client_certificate,
        "client_key_pem": pem.client_key,
        "ca_pem": pem.ca,
    }
    return pb.EndpointTls(**(values | fields))


def masked(auth: pb.EndpointAuthentication) -> pb.EndpointAuthentication:
    """``auth`` as reads show it: its write-only value replaced by the mask."""
    out = pb.EndpointAuthentication()
    out.CopyFrom(auth)
    method = out.WhichOneof("method")
    assert method is not None
    setattr(getattr(out, method), WRITE_ONLY[method], MASK)
    return out


def openssl_time(text: str) -> int:
    """A time as ``openssl x509 -enddate`` prints it, in Unix seconds."""
    return int(datetime.strptime(text, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=UTC).timestamp())


@pytest.mark.parametrize("method", sorted(AUTH))
async def test_every_read_masks_every_write_only_value(
    served: tuple[App, Any], pem: EndpointPem, method: str
) -> None:
    app, api = served
    given = AUTH[method]
    created = await api.CreateEndpoint(new_endpoint(authentication=given, tls=tls(pem)))
    got = await api.GetEndpoint(pb.GetEndpointRequest(endpoint_id=created.id))
    listed = await api.ListEndpoints(pb.ListEndpointsRequest())
    assert [e.id for e in listed.endpoints] == [created.id]
    secret = getattr(getattr(given, method), WRITE_ONLY[method])
    for read in (created, got, *listed.endpoints):
        wire = read.SerializeToString()
        assert secret.encode() not in wire
        assert b"PRIVATE KEY" not in wire
        # Everything else reads back as it was given.
        assert read.authentication == masked(given)
        assert read.tls.client_key_pem == MASK
        assert read.tls.client_certificate_pem == pem.client_certificate
        assert read.tls.ca_pem == pem.ca
    stored = (await app.store.get_endpoint(created.id)).spec
    assert getattr(stored.auth, WRITE_ONLY[method]) == secret
    assert stored.tls is not None and stored.tls.client_key_pem == pem.client_key


@pytest.mark.parametrize("method", sorted(AUTH))
async def test_update_sending_the_masks_back_keeps_the_stored_values(
    served: tuple[App, Any], pem: EndpointPem, method: str
) -> None:
    app, api = served
    created = await api.CreateEndpoint(new_endpoint(authentication=AUTH[method], tls=tls(pem)))
    read = await api.GetEndpoint(pb.GetEndpointRequest(endpoint_id=created.id))
    read.name = "renamed"  # a read-modify-write: everything else is sent back as read
    updated = await api.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=read,
            update_mask=field_mask_pb2.FieldMask(paths=["name", "authentication", "tls"]),
        )
    )
    assert updated.name == "renamed"
    assert (updated.authentication, updated.tls) == (read.authentication, read.tls)
    stored = (await app.store.get_endpoint(created.id)).spec
    secret = getattr(getattr(AUTH[method], method), WRITE_ONLY[method])
    assert getattr(stored.auth, WRITE_ONLY[method]) == secret
    assert stored.tls is not None and stored.tls.client_key_pem == pem.client_key


@pytest.mark.parametrize(
    ("method", "field", "value", "bad_field"),
    [
        ("api_key", "header_name", "X-Other-Key", "authentication.api_key.header_value"),
        ("basic", "username", "someone-else", "authentication.basic.password"),
        # A masked secret must not follow a new token URL to another server.
        (
            "oauth2",
            "token_url",
            "https://elsewhere.invalid/token",
            "authentication.oauth2.client_secret",
        ),
        ("oauth2", "client_id", "another-client", "authentication.oauth2.client_secret"),
    ],
)
async def test_a_mask_is_kept_only_for_what_its_value_belongs_to(
    api: Any, method: str, field: str, value: str, bad_field: str
) -> None:
    created = await api.CreateEndpoint(new_endpoint(authentication=AUTH[method]))
    read = await api.GetEndpoint(pb.GetEndpointRequest(endpoint_id=created.id))
    setattr(getattr(read.authentication, method), field, value)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=read, update_mask=field_mask_pb2.FieldMask(paths=["authentication"])
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field in violations(info.value)


async def test_a_mask_is_not_kept_across_methods(api: Any) -> None:
    created = await api.CreateEndpoint(new_endpoint(authentication=AUTH["basic"]))
    switched = pb.Endpoint(id=created.id, authentication=masked(AUTH["oauth2"]))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=switched, update_mask=field_mask_pb2.FieldMask(paths=["authentication"])
            )
        )
    assert "authentication.oauth2.client_secret" in violations(info.value)


async def test_tls_shows_the_certificates_expiry_and_the_key_follows_a_renewal(
    served: tuple[App, Any], pem: EndpointPem
) -> None:
    app, api = served
    # client_certificate_not_after is output only: what a caller sends is not taken.
    given = tls(pem, client_certificate_not_after=timestamp_pb2.Timestamp(seconds=1))
    created = await api.CreateEndpoint(new_endpoint(tls=given))
    not_after = openssl_time(pem.client_not_after)
    assert created.tls.client_certificate_not_after.seconds == not_after

    def update(value: pb.EndpointTls) -> pb.UpdateEndpointRequest:
        return pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=created.id, tls=value),
            update_mask=field_mask_pb2.FieldMask(paths=["tls"]),
        )

    # A renewed certificate for the same key: the masked key stands for the stored one.
    renewed = await api.UpdateEndpoint(
        update(tls(pem, client_certificate_pem=pem.renewed_certificate, client_key_pem=MASK))
    )
    assert renewed.tls.client_certificate_not_after.seconds > not_after + 27 * 86400
    stored = (await app.store.get_endpoint(created.id)).spec.tls
    assert stored is not None and stored.client_key_pem == pem.client_key
    assert stored.client_certificate_pem == pem.renewed_certificate

    # Another key pair's certificate needs its own key.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.UpdateEndpoint(
            update(tls(pem, client_certificate_pem=pem.other_certificate, client_key_pem=MASK))
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tls.client_key_pem" in violations(info.value)
    replaced = await api.UpdateEndpoint(
        update(tls(pem, client_certificate_pem=pem.other_certificate, client_key_pem=pem.other_key))
    )
    assert replaced.tls.client_key_pem == MASK
    stored = (await app.store.get_endpoint(created.id)).spec.tls
    assert stored is not None and stored.client_key_pem == pem.other_key

    # Settings with nothing in them remove TLS settings; a mask then has nothing to stand for.
    cleared = await api.UpdateEndpoint(update(pb.EndpointTls()))
    assert not cleared.HasField("tls")
    assert (await app.store.get_endpoint(created.id)).spec.tls is None
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.UpdateEndpoint(update(tls(pem, client_key_pem=MASK)))
    assert "tls.client_key_pem" in violations(info.value)
