"""convoyctl's entry point: global flags, the parser built from the command sets, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc

from convoyd.client import Client, ConvoydClientError, UnavailableError
from convoyd.ctl import cluster, deliveries, endpoints, events, portal
from convoyd.ctl.args import UsageError
from convoyd.ctl.registry import CommandSet, Runner
from convoyd.ctl.render import Output

EXIT_OK = 0
EXIT_SERVER = 1  # the server refused or failed the request
EXIT_USAGE = 2  # bad flags (argparse's own code)
EXIT_UNAVAILABLE = 3  # the daemon could not be reached

TOP = CommandSet(None)


def _health_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", default="", help="a gRPC service name (default: overall)")


@TOP.command(
    "health", help="show whether convoyd is serving (exit 1 when not)", configure=_health_flags
)
async def health(client: Client, args: argparse.Namespace, out: Output) -> int:
    status = await client.health(args.service)
    out.result(status, {"status": status})
    return EXIT_OK if status == "SERVING" else EXIT_SERVER


# Every command set convoyctl offers; a new resource adds its module here.
COMMAND_SETS: list[CommandSet] = [
    TOP,
    endpoints.COMMANDS,
    events.COMMANDS,
    deliveries.COMMANDS,
    portal.COMMANDS,
    portal.DASHBOARD,
    cluster.COMMANDS,
]


# (flag, argparse keywords) of the options every command takes.
GLOBAL_FLAGS: list[tuple[str, dict[str, Any]]] = [
    (
        "--target",
        {
            "metavar": "HOST:PORT",
            "help": "convoyd's gRPC address (default: $CONVOYD_GRPC_LISTEN, else 127.0.0.1:7400)",
        },
    ),
    ("--token", {"help": "bearer token (default: $CONVOYD_TOKEN)"}),
    (
        "--data-dir",
        {
            "metavar": "DIR",
            "help": "else read DIR/admin.token (default: $CONVOYD_DATA_DIR, else ./convoyd-data)",
        },
    ),
    ("--tls", {"action": "store_true", "default": False, "help": "connect with TLS"}),
    ("--ca-cert", {"metavar": "FILE", "help": "CA bundle (implies --tls)"}),
    ("--client-cert", {"metavar": "FILE", "help": "mTLS certificate chain"}),
    ("--client-key", {"metavar": "FILE", "help": "mTLS private key"}),
    ("--json", {"action": "store_true", "default": False, "help": "machine-readable output"}),
]


def _global_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    for flag, options in GLOBAL_FLAGS:
        if top:
            parser.add_argument(flag, **options)
        else:
            # Also accepted after the command (`convoyctl endpoints list --json`), unlisted
            # there; SUPPRESS keeps an unset copy from overwriting a value given before it.
            hidden = {"default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
            parser.add_argument(flag, **{**options, **hidden})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convoyctl", description="Operate a convoyd daemon.")
    _global_flags(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, top=False)
    top = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    for command_set in COMMAND_SETS:
        if command_set.group is None:
            under = top
        else:
            holder = top.add_parser(command_set.group, help=command_set.help)
            under = holder.add_subparsers(dest="command", required=True, metavar="COMMAND")
        for command in command_set.commands:
            sub = under.add_parser(command.name, help=command.help, parents=[common])
            command.configure(sub)
            sub.set_defaults(run=command.run)
    return parser


def client_from_args(args: argparse.Namespace) -> Client:
    """A Client for the global flags (reads the certificate files; OSError when it cannot)."""

    def read(path: str | None) -> bytes | None:
        return None if path is None else Path(path).read_bytes()

    return Client(
        args.target,
        token=args.token,
        data_dir=args.data_dir,
        tls=args.tls,
        root_certificates=read(args.ca_cert),
        certificate_chain=read(args.client_cert),
        private_key=read(args.client_key),
    )


def report(exc: ConvoydClientError, client: Client, out: Output) -> int:
    """Prints a failed call's code, message and field violations; returns the exit code."""
    print(f"convoyctl: {exc.code.name}: {exc.message}", file=out.err)
    for field, description in exc.field_violations:
        print(f"  {field}: {description}", file=out.err)
    if exc.code == grpc.StatusCode.UNAUTHENTICATED and client.token is None:
        print("  (no token found: use --token, $CONVOYD_TOKEN or --data-dir)", file=out.err)
    return EXIT_UNAVAILABLE if isinstance(exc, UnavailableError) else EXIT_SERVER


async def run(client: Client, args: argparse.Namespace, out: Output) -> int:
    """Runs the parsed command with ``client``; returns the exit code."""
    runner: Runner = args.run
    try:
        async with client:
            return await runner(client, args, out)
    except UsageError as exc:
        print(f"convoyctl: error: {exc}", file=out.err)
        return EXIT_USAGE
    except ConvoydClientError as exc:
        return report(exc, client, out)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad usage; return the code
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        client = client_from_args(args)
    except OSError as exc:
        print(f"convoyctl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    output = Output(as_json=args.json, out=sys.stdout, err=sys.stderr)
    try:
        return asyncio.run(run(client, args, output))
    except KeyboardInterrupt:
        return 130
