"""Argument types shared by convoyctl's commands, and the error for flags that do not fit."""

from __future__ import annotations

import argparse
import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


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


def id_arg(parser: argparse.ArgumentParser) -> None:
    """The positional resource id most commands take."""
    parser.add_argument("id", metavar="ID")
