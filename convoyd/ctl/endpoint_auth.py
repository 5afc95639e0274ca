"""The authentication and TLS flags of ``convoyctl endpoints create|update``, and the
EndpointAuthentication and EndpointTls messages they build.

Write-only values (the API key, the basic password, the OAuth2 client secret, the client key)
can come from a file or standard input (``--basic-password-file -``): a value on the command
line shows in ``ps``. The update mask replaces a whole field, so an update that names part of a
method (only ``--oauth2-scope``) or of the TLS settings (only ``--tls-ca``) reads the endpoint
first and sends the rest back as read; the masked values in it keep the stored ones, by the
service's rules (same header, username, token URL and client id, or a key that fits).
"""

from __future__ import annotations

import argparse

from convoyd.core.validation import MASK
from convoyd.ctl.args import ReadFile, ReadSecret, UsageError
from convoyd.v1 import endpoint_pb2 as pb

CLIENT_AUTH = {
    "basic": pb.OAuth2ClientCredentials.CLIENT_AUTHENTICATION_BASIC,
    "body": pb.OAuth2ClientCredentials.CLIENT_AUTHENTICATION_BODY,
}
API_KEY_FLAGS = ("auth_header", "auth_value")
BASIC_FLAGS = ("basic_user", "basic_password")
_OAUTH2_REQUIRED = ("oauth2_token_url", "oauth2_client_id", "oauth2_client_secret")
OAUTH2_FLAGS = (*_OAUTH2_REQUIRED, "oauth2_scopes", "oauth2_audience", "oauth2_client_auth")
AUTH_FLAGS = (*API_KEY_FLAGS, *BASIC_FLAGS, *OAUTH2_FLAGS)
TLS_FLAGS = ("tls_client_cert", "tls_client_key", "tls_ca")
# Each method's flags, and the one whose '' removes the endpoint's authentication.
_METHODS = {"api_key": API_KEY_FLAGS, "basic": BASIC_FLAGS, "oauth2": OAUTH2_FLAGS}
_REMOVING = {"api_key": "auth_header", "basic": "basic_user", "oauth2": "oauth2_token_url"}
_NAMES = {"oauth2_scopes": "--oauth2-scope"}


def flag(dest: str) -> str:
    """The option string of an argparse ``dest``: basic_password → --basic-password."""
    return _NAMES.get(dest, "--" + dest.replace("_", "-"))


def _flags(dests: list[str] | tuple[str, ...]) -> str:
    return ", ".join(flag(d) for d in dests)


def _secret_flag(parser: argparse.ArgumentParser, dest: str, what: str) -> None:
    """``--NAME VALUE`` or ``--NAME-file FILE`` (``-``: standard input), never both."""
    name = flag(dest)
    group = parser.add_mutually_exclusive_group()
    group.add_argument(name, dest=dest, metavar="VALUE", help=f"{what} (shows in ps: see -file)")
    group.add_argument(
        f"{name}-file",
        dest=dest,
        action=ReadSecret,
        metavar="FILE",
        help=f"read {what} from FILE ('-': standard input)",
    )


def auth_flags(parser: argparse.ArgumentParser) -> None:
    """One method's flags at a time: an API key, HTTP basic or OAuth2 client credentials."""
    add = parser.add_argument
    removes = "'' removes the authentication"
    add("--auth-header", metavar="NAME", help=f"header carrying an API key ({removes})")
    _secret_flag(parser, "auth_value", "the API key")
    add("--basic-user", metavar="USER", help=f"HTTP basic authentication's user ({removes})")
    _secret_flag(parser, "basic_password", "the basic password")
    add("--oauth2-token-url", metavar="URL", help=f"OAuth2 client credentials ({removes})")
    add("--oauth2-client-id", metavar="ID")
    _secret_flag(parser, "oauth2_client_secret", "the OAuth2 client secret")
    add(
        "--oauth2-scope",
        action="append",
        dest="oauth2_scopes",
        metavar="SCOPE",
        help="a scope to ask for (repeatable; update: replaces them all, '' clears)",
    )
    add("--oauth2-audience", metavar="AUDIENCE", help="the audience to ask for ('' none)")
    add(
        "--oauth2-client-auth",
        choices=CLIENT_AUTH,
        help="credentials to the token URL in a basic header (default) or the form body",
    )


def tls_flags(parser: argparse.ArgumentParser) -> None:
    """Mutual TLS and the CA trusted for the receiver, as PEM files (``-``: standard input)."""
    add = parser.add_argument
    add(
        "--tls-client-cert",
        action=ReadFile,
        metavar="FILE",
        help="PEM client certificate (+ intermediates) for mutual TLS ('' removes it and its key)",
    )
    add("--tls-client-key", action=ReadFile, metavar="FILE", help="its PEM private key")
    add(
        "--tls-ca",
        action=ReadFile,
        metavar="FILE",
        help="PEM CA certificates trusted for the receiver instead of the system's ('' removes)",
    )


def _given(args: argparse.Namespace, dests: tuple[str, ...]) -> list[str]:
    return [d for d in dests if getattr(args, d, None) is not None]


def _method(args: argparse.Namespace) -> str | None:
    """The method whose flags are given (None: no authentication flag); UsageError for two."""
    given = {method: _given(args, dests) for method, dests in _METHODS.items()}
    named = [method for method, dests in given.items() if dests]
    if len(named) > 1:
        first, second = (flag(given[m][0]) for m in named[:2])
        raise UsageError(
            f"{first} and {second} are flags of different authentication methods: give one"
        )
    return named[0] if named else None


def _updating(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "updating", False))


def _partial_auth(args: argparse.Namespace, method: str) -> bool:
    """Whether an update names too little of ``method`` to send it without the current one."""
    if not _updating(args):
        return False
    if method == "basic":
        return args.basic_user is None  # a new password for the current user
    if method == "oauth2":
        return len(_given(args, OAUTH2_FLAGS)) < len(OAUTH2_FLAGS)
    return False


def _check_auth(args: argparse.Namespace, method: str) -> bool:
    """Checks what the flags of ``method`` must satisfy without the current endpoint; True:
    they remove the authentication."""
    removing = _REMOVING[method]
    others = [d for d in _given(args, _METHODS[method]) if d != removing]
    if getattr(args, removing) == "":
        if others and method != "api_key":
            raise UsageError(
                f"{flag(removing)} '' removes the authentication: drop {_flags(others)}"
            )
        if not others:
            return True
    if method == "api_key" and (not args.auth_header or args.auth_value is None):
        raise UsageError("--auth-header and --auth-value go together (--auth-header '' clears)")
    if method == "basic" and args.basic_password is None:
        raise UsageError("--basic-user needs --basic-password or --basic-password-file")
    if method == "basic" and not _updating(args) and args.basic_user is None:
        raise UsageError("--basic-password needs --basic-user")
    missing = [d for d in _OAUTH2_REQUIRED if getattr(args, d) is None]
    if method == "oauth2" and missing and not _updating(args):
        raise UsageError(f"OAuth2 client credentials need {_flags(missing)}")
    return False


def needs_current(args: argparse.Namespace) -> bool:
    """Whether an update names part of a method or of the TLS settings, so that it has to
    read the endpoint and send the rest back as it is."""
    method = _method(args)
    partial_auth = method is not None and _partial_auth(args, method)
    return partial_auth or _partial_tls(args)


def authentication(
    args: argparse.Namespace, current: pb.Endpoint | None
) -> pb.EndpointAuthentication | None:
    """The EndpointAuthentication of the flags, which must name a method; None when it
    depends on ``current`` and that is not read yet (the flags are checked as far as they can
    be without it). An empty message (no method) removes the authentication."""
    method = _method(args)
    assert method is not None, "called without an authentication flag"
    if _check_auth(args, method):
        return pb.EndpointAuthentication()
    if _partial_auth(args, method) and current is None:
        return None
    now = current.authentication if current is not None else pb.EndpointAuthentication()
    if method == "api_key":
        key = pb.ApiKeyAuthentication(header_name=args.auth_header, header_value=args.auth_value)
        return pb.EndpointAuthentication(api_key=key)
    if method == "basic":
        return pb.EndpointAuthentication(basic=_basic(args, now))
    return pb.EndpointAuthentication(oauth2=_oauth2(args, now))


def _basic(args: argparse.Namespace, now: pb.EndpointAuthentication) -> pb.BasicAuthentication:
    user = args.basic_user
    if user is None:
        if now.WhichOneof("method") != "basic":
            raise UsageError("--basic-password needs --basic-user: the endpoint has no basic user")
        user = now.basic.username
    return pb.BasicAuthentication(username=user, password=args.basic_password)


def _oauth2(args: argparse.Namespace, now: pb.EndpointAuthentication) -> pb.OAuth2ClientCredentials:
    """The flags' OAuth2 settings; on an update, the current ones stand in for flags not given
    (the masked secret among them, which the service keeps for the same token URL and id)."""
    had = now.oauth2 if now.WhichOneof("method") == "oauth2" else None
    missing = [d for d in _OAUTH2_REQUIRED if getattr(args, d) is None]
    if had is None and missing:
        raise UsageError(f"switching to OAuth2 client credentials needs {_flags(missing)}")
    old = had or pb.OAuth2ClientCredentials()
    out = pb.OAuth2ClientCredentials(
        token_url=_or(args.oauth2_token_url, old.token_url),
        client_id=_or(args.oauth2_client_id, old.client_id),
        client_secret=_or(args.oauth2_client_secret, MASK),
        audience=_or(args.oauth2_audience, old.audience),
        client_authentication=(
            CLIENT_AUTH[args.oauth2_client_auth]
            if args.oauth2_client_auth is not None
            else old.client_authentication
        ),
    )
    scopes = old.scopes if args.oauth2_scopes is None else [s for s in args.oauth2_scopes if s]
    out.scopes.extend(scopes)
    moved = (out.token_url, out.client_id) != (old.token_url, old.client_id)
    if args.oauth2_client_secret is None and moved:
        raise UsageError(
            "a new --oauth2-token-url or --oauth2-client-id needs --oauth2-client-secret (or"
            " -file): the stored secret goes only to the token URL and client id it was given for"
        )
    return out


def _or(given: str | None, kept: str) -> str:
    return kept if given is None else given


def _partial_tls(args: argparse.Namespace) -> bool:
    """Whether an update leaves out TLS settings it must keep (the CA, or the key that goes
    with a renewed certificate)."""
    if not _updating(args) or not _given(args, TLS_FLAGS):
        return False
    cert_done = args.tls_client_cert == "" or (
        args.tls_client_cert is not None and args.tls_client_key is not None
    )
    return not (cert_done and args.tls_ca is not None)


def _check_tls(args: argparse.Namespace) -> None:
    cert, key = args.tls_client_cert, args.tls_client_key
    if key == "":
        raise UsageError(
            "--tls-client-key '' cannot remove the key alone: --tls-client-cert '' removes the"
            " client certificate and its key"
        )
    if cert == "" and key is not None:
        raise UsageError("--tls-client-cert '' removes the certificate: drop --tls-client-key")
    if not _updating(args) and (cert is None) != (key is None):
        raise UsageError("--tls-client-cert and --tls-client-key go together")


def tls(args: argparse.Namespace, current: pb.Endpoint | None) -> pb.EndpointTls | None:
    """The EndpointTls of the flags (nothing set: no TLS settings); None when it depends on
    ``current`` and that is not read yet. On an update the current certificate, key (masked:
    the service keeps the stored key for a certificate it belongs to) and CA stand in for the
    flags not given."""
    _check_tls(args)
    if _partial_tls(args) and current is None:
        return None
    now = current.tls if current is not None else pb.EndpointTls()
    cert = _or(args.tls_client_cert, now.client_certificate_pem)
    if args.tls_client_key is not None:
        key = args.tls_client_key
    else:
        key = MASK if cert and now.client_key_pem else ""
    if cert and not key:
        raise UsageError("--tls-client-cert needs --tls-client-key: the endpoint has none")
    if key and not cert:
        raise UsageError("--tls-client-key needs --tls-client-cert: the endpoint has none")
    return pb.EndpointTls(
        client_certificate_pem=cert, client_key_pem=key, ca_pem=_or(args.tls_ca, now.ca_pem)
    )


def readable(endpoint: pb.Endpoint) -> pb.Endpoint:
    """``endpoint`` as text output shows it: each PEM bundle on one line, as the number of
    certificates in it (``--json`` shows the PEM itself)."""
    shown = pb.Endpoint()
    shown.CopyFrom(endpoint)
    for name in ("client_certificate_pem", "ca_pem"):
        pem = getattr(shown.tls, name)
        if pem:
            count = pem.count("-----BEGIN CERTIFICATE-----")
            setattr(shown.tls, name, f"PEM, {count} certificate{'' if count == 1 else 's'}")
    return shown
