"""How convoyctl shows an endpoint: whole in JSON; for people, only what applies to it, its FIFO
queue in words, and its warnings on stderr."""

from __future__ import annotations

from convoyd.ctl import endpoint_auth
from convoyd.ctl.render import Output
from convoyd.v1 import endpoint_pb2 as pb

# The SignatureConfig fields each scheme signs with (convoyd.core.signing): Standard Webhooks
# is always HMAC-SHA256 in base64, so the hash and encoding fields say nothing about it.
SIGNATURE_FIELDS: dict[int, tuple[str, ...]] = {
    pb.SIGNATURE_SCHEME_STANDARD: ("scheme",),
    pb.SIGNATURE_SCHEME_CONVOY_SIMPLE: ("scheme", "hash", "encoding"),
    pb.SIGNATURE_SCHEME_CONVOY_ADVANCED: ("scheme", "hash", "encoding"),
}


def fifo_summary(endpoint: pb.Endpoint) -> str:
    """What holds a FIFO endpoint up, in words ("" when nothing does)."""
    if not endpoint.HasField("fifo"):
        return ""
    waiting = endpoint.fifo.waiting
    noun = "delivery" if waiting == 1 else "deliveries"
    return f"{waiting} {noun} waiting behind {endpoint.fifo.head_delivery_id}"


def readable(endpoint: pb.Endpoint) -> pb.Endpoint:
    """``endpoint`` as text output shows it: PEM bundles summed up (endpoint_auth.readable),
    only the signature fields its scheme uses, and no warnings (they go to stderr)."""
    shown = endpoint_auth.readable(endpoint)
    shown.ClearField("warnings")
    used = SIGNATURE_FIELDS.get(shown.signature.scheme)
    if used is not None:
        for name in ("scheme", "hash", "encoding"):
            if name not in used:
                shown.signature.ClearField(name)
    return shown


def warn(out: Output, endpoint: pb.Endpoint) -> None:
    """The endpoint's warnings, one ``warning:`` line each on stderr (text output only: in JSON
    they are part of the object)."""
    if out.as_json:
        return
    for text in endpoint.warnings:
        out.warning(text)


def show(out: Output, endpoint: pb.Endpoint) -> None:
    """One endpoint as a result: whole in JSON; for people, as ``readable`` makes it, its FIFO
    queue in words, then its warnings."""
    if out.as_json:
        out.resource(endpoint)
        return
    out.resource(readable(endpoint))
    if summary := fifo_summary(endpoint):
        out.line(f"fifo: {summary}")
    warn(out, endpoint)


def show_created(out: Output, created: pb.Endpoint) -> None:
    """A new endpoint: for people, its first secret's value apart (on the last line of stdout,
    easy to copy) with a note to store it now, then its warnings; whole in JSON."""
    if out.as_json:
        out.resource(created)
        return
    shown = readable(created)
    for secret in shown.secrets:
        secret.ClearField("value")
    out.resource(shown)
    values = [s.value for s in created.secrets if s.value]
    if values:
        out.line(f"secret: {values[0]}")
        out.note(
            "store this signing secret with your receiver now; "
            f"`convoyctl endpoints secret {created.id}` shows the live secrets"
        )
    warn(out, created)
