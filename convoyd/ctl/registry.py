"""convoyctl's command sets: one per resource, each a table of subcommands to build parsers from."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from convoyd.client import Client
from convoyd.ctl.render import Output

# A command's body: returns the exit code; server errors propagate as ConvoydClientError.
Runner = Callable[[Client, argparse.Namespace, Output], Awaitable[int]]
Configure = Callable[[argparse.ArgumentParser], None]


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    run: Runner
    configure: Configure


@dataclass(slots=True)
class CommandSet:
    """The subcommands under ``group`` (``convoyctl endpoints ...``); group None: top-level."""

    group: str | None
    help: str = ""
    commands: list[Command] = field(default_factory=list)

    def command(
        self, name: str, *, help: str, configure: Configure = _no_arguments
    ) -> Callable[[Runner], Runner]:
        """Registers the decorated runner as ``name``; ``configure`` adds its arguments."""

        def register(run: Runner) -> Runner:
            self.commands.append(Command(name, help, run, configure))
            return run

        return register
