"""WHERE clauses of the store's listings: constant conditions, values bound, never spliced in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Where:
    """Conditions joined by AND; ``sql()`` is empty while there are none."""

    __slots__ = ("_clauses", "params")

    def __init__(self) -> None:
        self._clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *params: Any) -> Where:
        """Adds ``clause`` (a constant with one ``?`` per value) and its values."""
        self._clauses.append(clause)
        self.params.extend(params)
        return self

    def among(self, column: str, values: Sequence[Any]) -> Where:
        """``column IN (values)``, one placeholder per value."""
        return self.add(f"{column} IN ({','.join('?' * len(values))})", *values)

    def sql(self) -> str:
        return f"WHERE {' AND '.join(self._clauses)}" if self._clauses else ""

    def numbered(self, start: int = 1) -> str:
        """``sql()`` with PostgreSQL's numbered placeholders ($1, $2, ...) from ``start``
        instead of ``?`` (the clauses are constants, so a ``?`` in them is a placeholder)."""
        parts = self.sql().split("?")
        out = [parts[0]]
        for n, part in enumerate(parts[1:], start):
            out.append(f"${n}{part}")
        return "".join(out)
