"""An endpoint's send_trace_context: convoyctl's flags and update mask, proto ⇄ domain, the stored
spec (rows from before the field read as on), and Create/Update/Get through a real server."""

from __future__ import annotations

import json

import pytest

from convoyd.client import Client
from convoyd.control.convert import changes_from_pb, endpoint_to_pb, spec_from_pb
from convoyd.core.model import Endpoint, EndpointSpec, EndpointStatus
from convoyd.ctl.cli import build_parser
from convoyd.ctl.endpoints import endpoint_from_args, update_mask
from convoyd.store import codec
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import Running

URL = "https://hooks.example.invalid/in"


@pytest.mark.parametrize(
    ("argv", "has", "value", "mask"),
    [
        (["create", "--url", URL], False, False, ["url"]),
        (
            ["create", "--url", URL, "--no-trace-context"],
            True,
            False,
            ["url", "send_trace_context"],
        ),
        (["update", "ep_1", "--trace-context"], True, True, ["send_trace_context"]),
        (["update", "ep_1", "--no-trace-context"], True, False, ["send_trace_context"]),
        (["update", "ep_1", "--name", "n"], False, False, ["name"]),
    ],
)
def test_convoyctl_flags(argv: list[str], has: bool, value: bool, mask: list[str]) -> None:
    args = build_parser().parse_args(["endpoints", *argv])
    ep = endpoint_from_args(args)
    assert ep.HasField("send_trace_context") is has
    assert ep.send_trace_context is value
    assert update_mask(args) == mask


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (pb.Endpoint(url=URL), True),  # unset: on
        (pb.Endpoint(url=URL, send_trace_context=True), True),
        (pb.Endpoint(url=URL, send_trace_context=False), False),
    ],
)
def test_unset_is_on_and_false_is_off(message: pb.Endpoint, expected: bool) -> None:
    assert spec_from_pb(message).send_trace_context is expected
    assert changes_from_pb(message, ["send_trace_context"]) == {"send_trace_context": expected}


@pytest.mark.parametrize("value", [True, False])
def test_reads_show_it_and_the_store_keeps_it(value: bool) -> None:
    spec = EndpointSpec(url=URL, send_trace_context=value)
    endpoint = Endpoint(
        id="ep_1",
        spec=spec,
        status=EndpointStatus.ACTIVE,
        status_reason="",
        status_changed_at=0.0,
        secrets=(),
        created_at=0.0,
        updated_at=0.0,
    )
    shown = endpoint_to_pb(endpoint, now=0.0)
    assert shown.HasField("send_trace_context") and shown.send_trace_context is value
    stored = codec.spec_to_json(spec)
    assert codec.spec_from_row(URL, "", "", stored).send_trace_context is value


def test_a_spec_stored_before_the_field_existed_sends_trace_context() -> None:
    doc = json.loads(codec.spec_to_json(EndpointSpec(url=URL)))
    del doc["send_trace_context"]
    assert codec.spec_from_row(URL, "", "", json.dumps(doc)).send_trace_context is True


async def test_create_update_and_get_through_the_daemon(app: Running) -> None:
    async with Client(app.grpc_target, token=app.token) as client:
        created = await client.create_endpoint(pb.Endpoint(url=URL, send_trace_context=False))
        assert created.send_trace_context is False
        assert (await client.get_endpoint(created.id)).send_trace_context is False
        updated = await client.update_endpoint(
            pb.Endpoint(id=created.id, send_trace_context=True), ["send_trace_context"]
        )
        assert updated.send_trace_context is True
        renamed = await client.update_endpoint(pb.Endpoint(id=created.id, name="n"), ["name"])
        assert renamed.send_trace_context is True  # a mask without it keeps it
        default = await client.create_endpoint(pb.Endpoint(url=URL))
        assert default.HasField("send_trace_context") and default.send_trace_context is True
