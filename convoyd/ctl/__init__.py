"""convoyctl: the operator's command line over convoyd's gRPC control plane.

Layout: ``cli`` builds the parser and runs a command; ``registry`` holds the command sets;
``args`` the argument types; ``render`` the human and JSON output; ``failures`` how errors are
told and the exit codes; one module per resource (``endpoints``) owns its flags, request building
and subcommands (``endpoint_view``: how an endpoint is shown). docs/cli.md is the contract.
"""

from __future__ import annotations

from convoyd.ctl.cli import main

__all__ = ["main"]
