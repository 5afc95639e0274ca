"""convoyd/core stays pure: no I/O imports, no clock reads, no global random generator.

Checked on the source with ``ast`` (nothing is imported), so a violation is reported with its file
and line even when importing the module would have side effects.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "convoyd" / "core"

# Top-level packages core may not import at all.
FORBIDDEN_IMPORTS = frozenset(
    {
        "asyncio",
        "aiohttp",
        "grpc",
        "sqlite3",
        "aiosqlite",
        "time",
        "socket",
        "os",
        "subprocess",
        "threading",
    }
)
# From the random module only the generator classes may be named (to build or annotate a
# generator that the caller passes in); random.random(), random.choice(), ... use hidden state.
ALLOWED_RANDOM = frozenset({"random.Random", "random.SystemRandom"})
# Clock reads, by their canonical dotted name (aliases resolved).
CLOCK_READS = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
        "time.perf_counter",
        "time.perf_counter_ns",
    }
)


def _dotted(node: ast.expr) -> list[str] | None:
    """["a", "b", "c"] for the expression a.b.c; None for anything else (calls, subscripts)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def violations(source: str, filename: str = "<core>") -> list[str]:
    """Every purity violation in ``source``, as "file:line: what"."""
    tree = ast.parse(source, filename)
    found: list[str] = []
    # Local name -> the dotted name it was imported as ("dt" -> "datetime.datetime").
    aliases: dict[str, str] = {}

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.partition(".")[0] in FORBIDDEN_IMPORTS:
                    report(node, f"imports {alias.name}")
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.partition(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.partition(".")[0] in FORBIDDEN_IMPORTS:
                report(node, f"imports from {node.module}")
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                aliases[alias.asname or alias.name] = full
                if node.module == "random" and full not in ALLOWED_RANDOM:
                    report(node, f"uses the global random generator ({full})")

    for node in ast.walk(tree):
        # The inner parts of a chain (a.b and a of a.b.c) are visited too; being shorter they
        # never match a forbidden name on their own.
        if not isinstance(node, ast.Attribute | ast.Name):
            continue
        parts = _dotted(node)
        if parts is None or parts[0] not in aliases:
            continue
        canonical = ".".join([aliases[parts[0]], *parts[1:]])
        if canonical in CLOCK_READS:
            report(node, f"reads the clock ({canonical})")
        elif (
            canonical.startswith("random.")
            and canonical.count(".") == 1
            and canonical not in ALLOWED_RANDOM
        ):
            report(node, f"uses the global random generator ({canonical})")
    return found


def _core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_core_has_modules() -> None:
    assert CORE.is_dir()
    assert len(_core_modules()) > 1


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_is_pure(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), str(path.relative_to(CORE.parent))) == []


# The checker itself, so that a silent checker cannot pass everything.
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import asyncio", ["imports asyncio"]),
        ("import os.path", ["imports os.path"]),
        ("import aiohttp.web as web", ["imports aiohttp.web"]),
        ("from grpc import aio", ["imports from grpc"]),
        ("from sqlite3 import connect", ["imports from sqlite3"]),
        ("import aiosqlite, socket", ["imports aiosqlite", "imports socket"]),
        ("import subprocess", ["imports subprocess"]),
        ("from threading import Lock", ["imports from threading"]),
        ("import time", ["imports time"]),
        ("import time\nx = time.time()", ["imports time", "reads the clock (time.time)"]),
        ("from time import monotonic", ["imports from time"]),
        ("from time import monotonic\nx = monotonic()", ["imports from time", "time.monotonic"]),
        ("def f():\n    import asyncio", ["imports asyncio"]),
        ("from datetime import datetime\nx = datetime.now()", ["datetime.datetime.now"]),
        ("from datetime import datetime as dt\nx = dt.utcnow()", ["datetime.datetime.utcnow"]),
        ("import datetime\nx = datetime.datetime.now(datetime.UTC)", ["datetime.datetime.now"]),
        ("from datetime import date\nx = date.today()", ["datetime.date.today"]),
        ("import random\nx = random.random()", ["random.random"]),
        ("import random\nx = random.choice([1, 2])", ["random.choice"]),
        ("import random as r\nx = r.randint(1, 2)", ["random.randint"]),
        ("from random import shuffle", ["random.shuffle"]),
        ("import random\npick = random.choice", ["random.choice"]),
        # Allowed: a generator passed in, built explicitly, or just annotated.
        ("import random\ndef f(rng: random.Random) -> float:\n    return rng.random()", []),
        ("import random\nrng = random.Random(4)", []),
        ("from random import Random\nrng = Random(4)", []),
        ("import random\nrng = random.SystemRandom()", []),
        # Pure stdlib and look-alikes are fine.
        ("from email.utils import parsedate_to_datetime", []),
        ("from datetime import UTC, datetime\nx = datetime.fromtimestamp(0, UTC)", []),
        ("import timeit_like_name", []),
        ("def f(now: float) -> float:\n    return now", []),
        ("class C:\n    def now(self) -> int:\n        return 1\nx = C().now()", []),
        ("from convoyd.core.model import RetryPolicy", []),
        ("from . import model", []),
    ],
)
def test_the_checker(source: str, expected: list[str]) -> None:
    found = violations(source)
    assert len(found) == len(expected), found
    for message, needle in zip(found, expected, strict=True):
        assert needle in message
