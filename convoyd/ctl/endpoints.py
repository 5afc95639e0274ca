"""``convoyctl endpoints ...``: endpoint flags, the requests built from them, the subcommands."""

from __future__ import annotations

import argparse

from convoyd.client import Client, duration
from convoyd.ctl import endpoint_auth
from convoyd.ctl.args import UsageError, count, delays, fraction, header, id_arg, seconds
from convoyd.ctl.endpoint_view import show, show_created
from convoyd.ctl.registry import CommandSet
from convoyd.ctl.render import Column, Output, column, field_text
from convoyd.v1 import endpoint_pb2

COMMANDS = CommandSet("endpoints", help="manage the endpoints webhooks are delivered to")

SCHEMES = {
    "standard": endpoint_pb2.SIGNATURE_SCHEME_STANDARD,
    "convoy-simple": endpoint_pb2.SIGNATURE_SCHEME_CONVOY_SIMPLE,
    "convoy-advanced": endpoint_pb2.SIGNATURE_SCHEME_CONVOY_ADVANCED,
}
HASHES = {
    "sha256": endpoint_pb2.SIGNATURE_HASH_SHA256,
    "sha512": endpoint_pb2.SIGNATURE_HASH_SHA512,
}
ENCODINGS = {
    "hex": endpoint_pb2.SIGNATURE_ENCODING_HEX,
    "base64": endpoint_pb2.SIGNATURE_ENCODING_BASE64,
}
STATUSES = {
    "active": endpoint_pb2.ENDPOINT_STATUS_ACTIVE,
    "inactive": endpoint_pb2.ENDPOINT_STATUS_INACTIVE,
    "paused": endpoint_pb2.ENDPOINT_STATUS_PAUSED,
    "pending": endpoint_pb2.ENDPOINT_STATUS_PENDING,
}
# Concurrent is the API's ORDERING_UNSPECIFIED: what an endpoint does unless it is FIFO.
ORDERINGS = {
    "concurrent": endpoint_pb2.ORDERING_UNSPECIFIED,
    "fifo": endpoint_pb2.ORDERING_FIFO,
}
_SIGNATURE_FLAGS = ("scheme", "hash", "encoding")
_RETRY_DETAIL_FLAGS = (
    *("retry_interval", "retry_max_interval", "retry_multiplier"),
    *("retry_max", "retry_delays", "retry_jitter"),
)
# The update_mask path (an Endpoint field) each flag sets, in the order masks list them.
MASK_OF_FLAG: dict[str, str] = {
    **{f: f for f in ("url", "name", "description", "owner_id", "event_types", "http_timeout")},
    **{f: f for f in ("rate_limit", "rate_limit_duration")},
    **dict.fromkeys(("retry", *_RETRY_DETAIL_FLAGS), "retry_policy"),
    **dict.fromkeys(_SIGNATURE_FLAGS, "signature"),
    **dict.fromkeys(endpoint_auth.AUTH_FLAGS, "authentication"),
    **{f: f for f in ("headers", "content_type", "max_concurrency", "ordering")},
    "send_trace_context": "send_trace_context",
    **dict.fromkeys(endpoint_auth.TLS_FLAGS, "tls"),
}
# The --retry-* flags each --retry strategy takes.
RETRY_FLAGS = {
    "exponential": {*_RETRY_DETAIL_FLAGS} - {"retry_delays"},
    "linear": {"retry_interval", "retry_max", "retry_jitter"},
    "schedule": {"retry_delays", "retry_jitter"},
    "default": {"retry_jitter"},
}
ENDPOINT_COLUMNS: list[Column] = [
    column("ID", "id"),
    column("NAME", "name"),
    column("OWNER", "owner_id"),
    column("STATUS", "status"),
    column("URL", "url"),
]
SECRET_COLUMNS: list[Column] = [
    column("ID", "id"),
    column("CREATED", "created_at"),
    column("EXPIRES", "expires_at", empty="never"),
    column("VALUE", "value"),
]


def endpoint_flags(parser: argparse.ArgumentParser, *, create: bool) -> None:
    """The flags of ``create`` and ``update``: one per Endpoint field (several for some)."""
    add = parser.add_argument
    add("--url", required=create, help="http or https URL the webhooks are POSTed to")
    add("--name")
    add("--description")
    add("--owner-id", help="the owner: fan-out target and portal scope")
    add(
        "--event-type",
        action="append",
        dest="event_types",
        metavar="TYPE",
        help="receive only this type (repeatable; none: all types; update: '' clears)",
    )
    add("--http-timeout", type=seconds, metavar="SECONDS", help="per-attempt timeout")
    add("--rate-limit", type=count, metavar="N", help="at most N requests per duration")
    add("--rate-limit-duration", type=seconds, metavar="SECONDS")
    add("--scheme", choices=SCHEMES, help="signature scheme")
    add("--hash", choices=HASHES, help="signature hash (Convoy schemes)")
    add("--encoding", choices=ENCODINGS, help="signature encoding (Convoy schemes)")
    endpoint_auth.auth_flags(parser)
    add(
        "--header",
        action="append",
        dest="headers",
        type=header,
        metavar="'NAME: VALUE'",
        help="extra request header (repeatable; update: replaces them all, '' clears)",
    )
    add("--content-type")
    add("--max-concurrency", type=count, metavar="N", help="most attempts in flight at once")
    add(
        "--ordering",
        choices=ORDERINGS,
        help="fifo: one delivery at a time in acceptance order (a failing one holds the rest);"
        " concurrent: the default",
    )
    add(
        "--trace-context",
        action=argparse.BooleanOptionalAction,
        dest="send_trace_context",
        help="send W3C traceparent/tracestate headers when the daemon traces (default: on);"
        " --no-trace-context for receivers that refuse unknown headers",
    )
    add("--retry", choices=RETRY_FLAGS, help="retry strategy ('default': the server's)")
    add("--retry-interval", type=seconds, metavar="SECONDS", help="exponential: first delay")
    add("--retry-max-interval", type=seconds, metavar="SECONDS", help="exponential: delay cap")
    add("--retry-multiplier", type=float, metavar="X", help="exponential: growth factor")
    add("--retry-max", type=count, metavar="N", help="exponential, linear: most retries")
    add("--retry-delays", type=delays, metavar="LIST", help="schedule: e.g. '5,300,1800'")
    add(
        "--retry-jitter",
        type=fraction,
        metavar="FRACTION",
        help="0 to 1: how much each delay varies; 0.2 (the default) varies it by ±10 %%",
    )
    endpoint_auth.tls_flags(parser)
    if create:
        add("--secret", default="", help="the first signing secret (default: generated)")
    parser.set_defaults(updating=not create)


def update_mask(args: argparse.Namespace) -> list[str]:
    """The update_mask paths of exactly the endpoint flags given."""
    paths: list[str] = []
    for flag, path in MASK_OF_FLAG.items():
        if getattr(args, flag, None) is not None and path not in paths:
            paths.append(path)
    return paths


def needs_current(args: argparse.Namespace) -> bool:
    """Whether an update must read the endpoint first: some, not all, signature flags given
    (the mask replaces the whole signature, so the others keep their current values), or part
    of an authentication method or of the TLS settings (see endpoint_auth)."""
    given = [getattr(args, f, None) is not None for f in _SIGNATURE_FLAGS]
    return (any(given) and not all(given)) or endpoint_auth.needs_current(args)


# Where each detail flag goes in the message of its strategy: (field, is a duration).
_RETRY_FIELDS = {
    "exponential": {
        "retry_interval": ("initial_interval", True),
        "retry_max_interval": ("max_interval", True),
        "retry_multiplier": ("multiplier", False),
        "retry_max": ("max_retries", False),
    },
    "linear": {"retry_interval": ("interval", True), "retry_max": ("max_retries", False)},
}


def retry_policy(args: argparse.Namespace) -> endpoint_pb2.RetryPolicy:
    """The RetryPolicy of the --retry flags; UsageError when they do not fit together."""
    given = {f for f in _RETRY_DETAIL_FLAGS if getattr(args, f) is not None}
    if args.retry is None:
        raise UsageError("--retry-* options need --retry exponential|linear|schedule|default")
    extra = sorted(given - RETRY_FLAGS[args.retry])
    if extra:
        flags = ", ".join("--" + f.replace("_", "-") for f in extra)
        raise UsageError(f"--retry {args.retry} does not take {flags}")
    policy = endpoint_pb2.RetryPolicy()
    if args.retry_jitter is not None:
        policy.jitter = args.retry_jitter
    if args.retry in _RETRY_FIELDS:
        strategy = getattr(policy, args.retry)
        strategy.SetInParent()
        for flag, (field, is_duration) in _RETRY_FIELDS[args.retry].items():
            value = getattr(args, flag)
            if value is None:
                continue
            if is_duration:
                getattr(strategy, field).CopyFrom(duration(value))
            else:
                setattr(strategy, field, value)
    elif args.retry == "schedule":
        if not args.retry_delays:
            raise UsageError("--retry schedule needs --retry-delays, e.g. '5,300,1800'")
        policy.schedule.delays.extend(duration(d) for d in args.retry_delays)
    return policy


def _signature(
    args: argparse.Namespace, current: endpoint_pb2.Endpoint | None
) -> endpoint_pb2.SignatureConfig:
    signature = endpoint_pb2.SignatureConfig()
    if current is not None:
        signature.CopyFrom(current.signature)
    for flag, names in (("scheme", SCHEMES), ("hash", HASHES), ("encoding", ENCODINGS)):
        if getattr(args, flag) is not None:
            setattr(signature, flag, names[getattr(args, flag)])
    return signature


def endpoint_from_args(
    args: argparse.Namespace, current: endpoint_pb2.Endpoint | None = None
) -> endpoint_pb2.Endpoint:
    """An Endpoint holding the flags' values; ``current`` (the endpoint as read, when
    needs_current) supplies the rest of a partial signature, authentication or TLS settings."""
    ep = endpoint_pb2.Endpoint()
    plain = ("url", "name", "description", "owner_id", "content_type")
    for flag in (*plain, "rate_limit", "max_concurrency", "send_trace_context"):
        if getattr(args, flag) is not None:
            setattr(ep, flag, getattr(args, flag))
    for flag in ("http_timeout", "rate_limit_duration"):
        if getattr(args, flag) is not None:
            getattr(ep, flag).CopyFrom(duration(getattr(args, flag)))
    if args.ordering is not None:
        ep.ordering = ORDERINGS[args.ordering]
    if args.event_types is not None:
        ep.event_types.extend(t for t in args.event_types if t)
    if args.headers is not None:
        ep.headers.update({name: value for name, value in args.headers if name})
    mask = update_mask(args)
    if "retry_policy" in mask:
        ep.retry_policy.CopyFrom(retry_policy(args))
    if "signature" in mask:
        ep.signature.CopyFrom(_signature(args, current))
        ep.signature.SetInParent()
    auth = endpoint_auth.authentication(args, current) if "authentication" in mask else None
    if auth is not None:
        ep.authentication.CopyFrom(auth)
        ep.authentication.SetInParent()  # no method: an update removes the authentication
    tls = endpoint_auth.tls(args, current) if "tls" in mask else None
    if tls is not None:
        ep.tls.CopyFrom(tls)
        ep.tls.SetInParent()  # nothing set: an update removes the TLS settings
    return ep


def _create_flags(parser: argparse.ArgumentParser) -> None:
    endpoint_flags(parser, create=True)


@COMMANDS.command("create", help="create an endpoint", configure=_create_flags)
async def create(client: Client, args: argparse.Namespace, out: Output) -> int:
    created = await client.create_endpoint(endpoint_from_args(args), secret=args.secret)
    show_created(out, created)
    return 0


@COMMANDS.command("get", help="show one endpoint", configure=id_arg)
async def get(client: Client, args: argparse.Namespace, out: Output) -> int:
    show(out, await client.get_endpoint(args.id))
    return 0


def _list_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--owner-id", default="")
    parser.add_argument("--status", choices=STATUSES)
    parser.add_argument("--page-size", type=count, default=0, help="default 50, at most 1000")
    parser.add_argument("--page-token", default="", help="continue a listing")
    parser.add_argument("--all", action="store_true", help="follow every page")


@COMMANDS.command("list", help="list endpoints, newest first", configure=_list_flags)
async def list_(client: Client, args: argparse.Namespace, out: Output) -> int:
    status = STATUSES.get(args.status or "", endpoint_pb2.ENDPOINT_STATUS_UNSPECIFIED)
    if args.all:
        found = client.iter_endpoints(
            owner_id=args.owner_id, status=status, page_size=args.page_size
        )
        out.listing([ep async for ep in found], ENDPOINT_COLUMNS)
        return 0
    page = await client.list_endpoints(
        owner_id=args.owner_id, status=status, page_size=args.page_size, page_token=args.page_token
    )
    out.listing(page.endpoints, ENDPOINT_COLUMNS)
    if page.next_page_token:
        out.note(f"more: --page-token {page.next_page_token} (or --all)")
    return 0


def _update_flags(parser: argparse.ArgumentParser) -> None:
    id_arg(parser)
    endpoint_flags(parser, create=False)


@COMMANDS.command("update", help="change the fields given as flags", configure=_update_flags)
async def update(client: Client, args: argparse.Namespace, out: Output) -> int:
    mask = update_mask(args)
    if not mask:
        raise UsageError("nothing to update: give at least one field flag (see --help)")
    endpoint = endpoint_from_args(args)  # usage errors before any call
    if needs_current(args):
        endpoint = endpoint_from_args(args, await client.get_endpoint(args.id))
    endpoint.id = args.id
    show(out, await client.update_endpoint(endpoint, mask))
    return 0


@COMMANDS.command("delete", help="delete an endpoint and its deliveries", configure=id_arg)
async def delete(client: Client, args: argparse.Namespace, out: Output) -> int:
    await client.delete_endpoint(args.id)
    out.result(f"deleted {args.id}", {})
    return 0


def _id_and_reason(parser: argparse.ArgumentParser) -> None:
    id_arg(parser)
    parser.add_argument("--reason", default="", help="kept as the status_reason")


@COMMANDS.command("pause", help="hold deliveries; discard new events", configure=_id_and_reason)
async def pause(client: Client, args: argparse.Namespace, out: Output) -> int:
    show(out, await client.pause_endpoint(args.id, reason=args.reason))
    return 0


@COMMANDS.command("resume", help="resume a paused endpoint", configure=id_arg)
async def resume(client: Client, args: argparse.Namespace, out: Output) -> int:
    show(out, await client.resume_endpoint(args.id))
    return 0


@COMMANDS.command(
    "activate", help="make an inactive or pending endpoint active now", configure=_id_and_reason
)
async def activate(client: Client, args: argparse.Namespace, out: Output) -> int:
    show(out, await client.activate_endpoint(args.id, reason=args.reason))
    return 0


def _rotate_flags(parser: argparse.ArgumentParser) -> None:
    id_arg(parser)
    parser.add_argument("--secret", default="", help="the new secret (default: generated)")
    parser.add_argument(
        "--old-secret-lifetime",
        type=seconds,
        metavar="SECONDS",
        help="how long the current secrets keep signing (default 24h; 0: now)",
    )


CONVOY_SIMPLE_ROTATION = (
    "this endpoint's scheme (convoy-simple) carries one signature, so convoyd keeps signing "
    "with the oldest live secret until it expires, then switches to the new one; add the new "
    "secret to your receiver before then"
)


@COMMANDS.command(
    "rotate-secret", help="add a signing secret; the old ones expire later", configure=_rotate_flags
)
async def rotate_secret(client: Client, args: argparse.Namespace, out: Output) -> int:
    got = await client.rotate_endpoint_secret(
        args.id, secret=args.secret, old_secret_lifetime=args.old_secret_lifetime
    )
    if out.as_json:
        out.resource(got)
    else:
        out.resource(got.secret)
        for old in got.endpoint.secrets:
            if old.id != got.secret.id:
                until = field_text(old, "expires_at") or "it is removed"
                out.line(f"previous secret {old.id} signs until {until}")
    if got.endpoint.signature.scheme == endpoint_pb2.SIGNATURE_SCHEME_CONVOY_SIMPLE:
        out.note(CONVOY_SIMPLE_ROTATION)
    return 0


@COMMANDS.command("secret", help="show the live signing secrets' values", configure=id_arg)
async def secret(client: Client, args: argparse.Namespace, out: Output) -> int:
    out.listing((await client.get_endpoint_secret(args.id)).secrets, SECRET_COLUMNS)
    return 0
