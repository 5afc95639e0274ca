"""The yardstick: the same work as convoyd without convoyd, in one process.

aiohttp POSTs with an HMAC signature, 64 in flight, batched SQLite inserts of the deliveries
and batched status updates plus attempt rows (WAL, synchronous=FULL). Prints deliveries/s as
JSON. Results of the benchmark read as ratios to this on any machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import aiohttp

IN_FLIGHT = 64


async def run(url: str, count: int, db: Path) -> dict[str, float]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE d (id TEXT PRIMARY KEY, body BLOB, status TEXT, attempts INT)")
    conn.execute("CREATE TABLE a (id TEXT, d TEXT, status INT, at REAL)")
    key = b"k" * 32
    started = time.perf_counter()
    rows = [
        (f"dl_{i:012d}", json.dumps({"i": i, "t": time.time()}).encode(), "scheduled", 0)
        for i in range(count)
    ]
    for start in range(0, count, 1000):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO d VALUES (?,?,?,?)", rows[start : start + 1000])
        conn.execute("COMMIT")
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for row in rows:
        queue.put_nowait((row[0], row[1]))
    done: list[tuple[str, int, float]] = []

    async def flusher() -> None:
        while True:
            await asyncio.sleep(0.02)
            if done:
                batch = done[:]
                done.clear()
                conn.execute("BEGIN")
                conn.executemany(
                    "UPDATE d SET status='success', attempts=1 WHERE id=?",
                    [(d,) for d, _, _ in batch],
                )
                conn.executemany(
                    "INSERT INTO a VALUES (?,?,?,?)", [(f"at_{d}", d, s, t) for d, s, t in batch]
                )
                conn.execute("COMMIT")

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            delivery_id, body = queue.get_nowait()
            ts = str(int(time.time()))
            sig = base64.b64encode(
                hmac.new(key, f"{delivery_id}.{ts}.".encode() + body, hashlib.sha256).digest()
            )
            headers = {
                "webhook-id": delivery_id,
                "webhook-timestamp": ts,
                "webhook-signature": "v1," + sig.decode(),
                "Content-Type": "application/json",
            }
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.read()
                done.append((delivery_id, resp.status, time.time()))

    flush = asyncio.create_task(flusher())
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        await asyncio.gather(*(worker(session) for _ in range(IN_FLIGHT)))
    await asyncio.sleep(0.05)
    flush.cancel()
    elapsed = time.perf_counter() - started
    conn.close()
    return {"deliveries": count, "seconds": elapsed, "per_second": count / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        import uvloop

        result = uvloop.run(run(args.url, args.count, Path(tmp) / "y.db"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
