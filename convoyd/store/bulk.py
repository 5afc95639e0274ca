"""Many rows in one statement: the writer's hot inserts and updates.

Why not ``executemany``: the sqlite3 module lets go of the GIL around every row's step and takes
it back after. While the event loop's thread is busy, each take-back waits for the interpreter's
switch interval (5 ms), so a 500-row ``executemany`` beside the loop stalls for seconds and
spends most of its CPU on GIL hand-offs. Measured on the 2-core development machine, 5-column
rows with two indexes: ``executemany`` 4.7 µs of CPU per row alone but 75 µs beside a busy
thread; one multi-row ``VALUES`` statement per chunk 1.6 µs alone and 4.4 µs beside it.

Statements are built for a bounded set of chunk sizes (CHUNK, then powers of two for the rest)
so the sqlite3 module's statement cache keeps them prepared.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

CHUNK = 256
"""Rows per statement at most: 256 rows of 15 columns stay far below SQLite's 32,766 variables."""


def chunk_sizes(count: int) -> list[int]:
    """How ``count`` rows are split: full chunks, then the rest in descending powers of two."""
    sizes = [CHUNK] * (count // CHUNK)
    rest = count % CHUNK
    bit = CHUNK
    while rest:
        bit >>= 1
        if rest & bit:
            sizes.append(bit)
            rest -= bit
    return sizes


@functools.lru_cache(maxsize=512)
def statement(template: str, columns: int, rows: int) -> str:
    """``template`` with ``{values}`` replaced by ``rows`` groups of ``columns`` placeholders."""
    group = "(" + ",".join("?" * columns) + ")"
    return template.replace("{values}", ",".join([group] * rows))


def run(conn: sqlite3.Connection, template: str, rows: Sequence[Sequence[Any]]) -> None:
    """Runs ``template`` (an SQL text with one ``{values}``) over every chunk of ``rows``.

    All rows must have the same number of columns. Inside ``template`` the values read as
    a VALUES list, whose columns SQLite names ``column1``, ``column2`` and so on.
    """
    if not rows:
        return
    columns = len(rows[0])
    start = 0
    for size in chunk_sizes(len(rows)):
        part = rows[start : start + size]
        start += size
        conn.execute(statement(template, columns, size), [v for row in part for v in row])
