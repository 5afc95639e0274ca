"""convoyctl's entry point: global flags, the parser built from the command sets, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from convoyd.client import Client, ConvoydClientError
from convoyd.ctl import cluster, deliveries, endpoints, events, failures, portal
from convoyd.ctl.args import UsageError
from convoyd.ctl.failures import EXIT_BROKEN_PIPE, EXIT_OK, EXIT_SERVER, EXIT_USAGE
from convoyd.ctl.registry import CommandSet, Runner
from convoyd.ctl.render import Output

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
    """Tells a failed call once (its code, message and field violations); returns the exit code."""
    failure = failures.from_client_error(
        exc, target=client.target, token_found=client.token is not None
    )
    return failures.tell(failure, out)


async def run(client: Client, args: argparse.Namespace, out: Output) -> int:
    """Runs the parsed command with ``client``; returns the exit code."""
    runner: Runner = args.run
    try:
        async with client:
            return await runner(client, args, out)
    except UsageError as exc:
        return failures.tell(failures.usage(str(exc)), out)
    except ConvoydClientError as exc:
        return report(exc, client, out)


def _quiet_stdout() -> None:
    """Points standard output at /dev/null, so that what is still buffered for a reader that
    went away (``| head -1``) is dropped instead of failing again when Python exits."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file behind sys.stdout (embedded, tests)
        pass
    finally:
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad usage; return the code
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    output = Output(as_json=args.json, out=sys.stdout, err=sys.stderr)
    try:
        client = client_from_args(args)
    except OSError as exc:
        return failures.tell(failures.usage(str(exc)), output)
    try:
        code = asyncio.run(run(client, args, output))
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    return code
