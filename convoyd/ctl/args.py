"""Argument types shared by convoyctl's commands, and the error for flags that do not fit."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Far above any PEM bundle or credential convoyd takes: a wrong path (a device, a log file)
# fails at once instead of being read whole.
MAX_FILE_BYTES = 1 << 20


class UsageError(Exception):
    """Flags that parse one by one but do not make sense together (exit code 2)."""


def seconds(text: str) -> float:
    """'30', '1.5', '500ms', '5m', '2h', '1d' → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30, 1.5, 500ms, 5m, 2h)")
    value = float(match[1]) * _UNITS[match[2] or "s"]
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    return value


def count(text: str) -> int:
    """A whole number ≥ 0."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number ≥ 0: {text!r}")
    return int(text)


def fraction(text: str) -> float:
    """A number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"not a number from 0 to 1: {text!r}")
    return value


def delays(text: str) -> list[float]:
    """'5,300,1800' or '5s,5m,30m' → seconds."""
    return [seconds(part) for part in text.split(",") if part.strip()]


def header(text: str) -> tuple[str, str]:
    """'Name: value' → (name, value); '' → ('', ''), which adds nothing (so clears on update)."""
    if not text.strip():
        return ("", "")
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"a header is 'Name: value', not {text!r}")
    return (name.strip(), value.strip())


def header_flag(parser: argparse.ArgumentParser, help: str) -> None:
    """--header 'NAME: VALUE', repeatable, into ``args.headers`` as (name, value) pairs."""
    repeated: dict[str, Any] = {"action": "append", "dest": "headers", "type": header}
    parser.add_argument("--header", metavar="'NAME: VALUE'", help=help, **repeated)


def header_map(pairs: Sequence[tuple[str, str]] | None) -> dict[str, str]:
    """--header pairs as a map; the empty pair of ``--header ''`` adds nothing."""
    return {name: value for name, value in pairs or () if name}


class ReadFile(argparse.Action):
    """Stores the text of the file the flag names instead of the name; ``-`` reads standard
    input, which only one flag may do. ``''`` stores ``''``: the flag's way to clear on update."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        name = str(values)
        setattr(namespace, self.dest, self.text(namespace, name) if name else "")

    def text(self, namespace: argparse.Namespace, name: str) -> str:
        try:
            if name == "-":
                taken = getattr(namespace, "_stdin_flag", None)
                if taken is not None:
                    raise argparse.ArgumentError(self, f"standard input is read by {taken} already")
                namespace._stdin_flag = self.option_strings[0]
                raw = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
            else:
                with Path(name).open("rb") as file:
                    raw = file.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise argparse.ArgumentError(self, f"cannot read {name}: {exc.strerror}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise argparse.ArgumentError(self, f"{name} is larger than {MAX_FILE_BYTES} bytes")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise argparse.ArgumentError(self, f"{name} is not UTF-8 text") from None


class ReadSecret(ReadFile):
    """A write-only value from a file or standard input, so that it never shows in ``ps``;
    the line end that ``echo`` and editors add is dropped."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        name = str(values)
        if not name:
            raise argparse.ArgumentError(self, "needs a file name, or - for standard input")
        text = self.text(namespace, name)
        setattr(namespace, self.dest, text.removesuffix("\n").removesuffix("\r"))


def id_arg(parser: argparse.ArgumentParser) -> None:
    """The positional resource id most commands take."""
    parser.add_argument("id", metavar="ID")


def moment(text: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 ('2024-05-01', '2024-05-01T12:00:00+02:00'; no offset means UTC), or a time
    ago: '30m', '1h', '2d' (also '1h ago'); ``now`` defaults to the current time."""
    relative = text.strip().removesuffix("ago").strip()
    if re.fullmatch(r"(\d+(\.\d*)?|\.\d+)\s*(ms|s|m|h|d)", relative):
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds(relative))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (e.g. 2024-05-01T12:00:00Z, or 30m, 1h, 2d ago)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def time_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """--since and --until (``args.since``, ``args.until``: aware datetimes or None)."""
    for flag, side in (("--since", "at or after"), ("--until", "before")):
        parser.add_argument(
            flag,
            type=moment,
            metavar="TIME",
            help=f"{what} created {side} TIME: ISO 8601 (UTC unless given) or 30m, 1h, 2d ago",
        )


def paging_flags(parser: argparse.ArgumentParser) -> None:
    """--page-size, --page-token and --all, for ``render.Output.pages``."""
    add = parser.add_argument
    add("--page-size", type=count, default=0, metavar="N", help="default 50, at most 1000")
    add("--page-token", default="", metavar="TOKEN", help="continue a listing")
    add("--all", action="store_true", dest="all_pages", help="follow every page")
