"""The layers of docs/architecture.md §1, kept by a test: who may import what, where SQL lives.

Checked on the source with ``ast``, so a violation is reported with its file and line. The
purity of ``convoyd/core/`` has its own, stricter test (tests/core/test_purity.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "convoyd"

# Where generated protobuf modules may be imported: the edges and the composition root.
PB2_ALLOWED = ("control/", "client/", "ctl/", "v1/", "app.py", "listeners.py")
# Where SQL and database drivers may appear.
SQL_ALLOWED = ("store/",)
DRIVERS = frozenset({"sqlite3", "aiosqlite", "asyncpg"})
# The statements of SQL as they open a string literal.
SQL_TEXT = re.compile(
    r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|"
    r"CREATE\s+(TABLE|INDEX)\s|PRAGMA\s)",
    re.DOTALL,  # upper-case keywords, as convoyd's SQL is written: prose is not flagged
)
# Packages a layer must not import (by the module path under convoyd/).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "service/": (
        "convoyd.delivery",
        "convoyd.control",
        "convoyd.portal",
        "convoyd.http",
        "convoyd.v1",
    ),
    "core/": (
        "convoyd.store",
        "convoyd.service",
        "convoyd.delivery",
        "convoyd.control",
        "convoyd.portal",
        "convoyd.http",
        "convoyd.v1",
        "convoyd.app",
    ),
    "store/": (
        "convoyd.service",
        "convoyd.delivery",
        "convoyd.control",
        "convoyd.portal",
        "convoyd.http",
    ),
    "delivery/": (
        "convoyd.service",
        "convoyd.control",
        "convoyd.portal",
        "convoyd.http",
        "convoyd.v1",
    ),
    "portal/": ("convoyd.store.sqlite", "convoyd.delivery", "convoyd.control", "convoyd.v1"),
    "http/": ("convoyd.store.sqlite", "convoyd.delivery", "convoyd.control", "convoyd.v1"),
}


def _imports(tree: ast.AST) -> list[tuple[int, list[str]]]:
    """Each import statement's line and the dotted names it brings in."""
    found: list[tuple[int, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
            found.append((node.lineno, [node.module, *names]))
    return found


def _rules(where: str, name: str) -> list[tuple[str, str]]:
    """The rules importing ``name`` breaks in ``where``: (rule, message) pairs."""
    broken: list[tuple[str, str]] = []
    if name.rsplit(".", 1)[-1].endswith("_pb2") and not where.startswith(PB2_ALLOWED):
        broken.append(("protobuf", f"imports protobuf {name}"))
    top = name.partition(".")[0]
    if top in DRIVERS and not where.startswith(SQL_ALLOWED):
        broken.append(("driver", f"imports the database driver {top}"))
    for layer, banned in FORBIDDEN.items():
        if where.startswith(layer) and any(name == b or name.startswith(b + ".") for b in banned):
            broken.append((layer, f"{layer} imports {name}"))
    return broken


def violations(source: str, where: str) -> list[str]:
    """Every layering violation of the module at ``where`` (its path under convoyd/):
    one per rule an import statement breaks."""
    tree = ast.parse(source, where)
    found: list[str] = []
    for line, names in _imports(tree):
        seen: set[str] = set()
        for name in names:
            for rule, message in _rules(where, name):
                if rule not in seen:
                    seen.add(rule)
                    found.append(f"{where}:{line}: {message}")
    if not where.startswith(SQL_ALLOWED):
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SQL_TEXT.match(node.value)
            ):
                found.append(f"{where}:{node.lineno}: SQL outside store/")
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "v1" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_keeps_its_layer(path: Path) -> None:
    where = path.relative_to(PACKAGE).as_posix()
    assert violations(path.read_text(encoding="utf-8"), where) == []


@pytest.mark.parametrize(
    ("where", "source", "expected"),
    [
        ("service/x.py", "from convoyd.delivery.engine import Engine", ["service/ imports"]),
        ("service/x.py", "import convoyd.delivery.hub", ["service/ imports"]),
        ("service/x.py", "from convoyd.v1 import event_pb2", ["protobuf", "service/ imports"]),
        ("portal/x.py", "from convoyd.v1.event_pb2 import Event", ["protobuf", "portal/"]),
        ("control/x.py", "from convoyd.v1 import event_pb2", []),
        ("app.py", "from convoyd.v1 import event_pb2_grpc", []),
        ("delivery/x.py", "import sqlite3", ["database driver"]),
        ("portal/x.py", "import asyncpg", ["database driver"]),
        ("store/x.py", "import sqlite3\nQ = 'SELECT id FROM events'", []),
        ("service/x.py", "Q = 'SELECT id FROM events WHERE id = ?'", ["SQL outside"]),
        ("delivery/x.py", "Q = '''\n  UPDATE deliveries SET status = 1'''", ["SQL outside"]),
        ("service/x.py", "MSG = 'select an endpoint from the list'", []),
        ("service/x.py", "MSG = 'Update the endpoint first'", []),
        ("core/x.py", "from convoyd.store.base import Store", ["core/ imports"]),
        ("store/x.py", "from convoyd.service.events import EventManager", ["store/ imports"]),
        ("delivery/x.py", "from convoyd.service import feed", ["delivery/ imports"]),
        ("delivery/x.py", "from convoyd.store.base import Store", []),
        ("service/x.py", "from convoyd.store.base import Store", []),
    ],
)
def test_the_checker(where: str, source: str, expected: list[str]) -> None:
    found = violations(source, where)
    assert len(found) == len(expected), found
    for needle in expected:
        assert any(needle in message for message in found), (needle, found)
