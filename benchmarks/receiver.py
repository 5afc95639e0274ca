"""A fast webhook receiver for benchmarks: raw asyncio HTTP/1.1, answers 204, verifies nothing.

Each body carries ``"t": <unix time the load generator sent it>``; the receiver keeps the
accept-to-arrival delay of every request. ``GET /stats`` returns counts and latency
percentiles as JSON; ``POST /reset`` clears them. Prints its port on stdout, then serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

_T = re.compile(rb'"t":\s*([0-9.]+)')
_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.delays: list[float] = []
        self.first = 0.0
        self.last = 0.0
        self.paths: set[bytes] = set()

    def summary(self) -> dict[str, float]:
        delays = sorted(self.delays)

        def pct(p: float) -> float:
            return delays[min(len(delays) - 1, int(p * len(delays)))] * 1000 if delays else 0.0

        return {
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "paths": len(self.paths),
            "p50_ms": pct(0.50),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "max_ms": delays[-1] * 1000 if delays else 0.0,
        }


class Receiver(asyncio.Protocol):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.handle(head.split(b"\r\n", 1)[0], body)

    def handle(self, request_line: bytes, body: bytes) -> None:
        assert self.transport is not None
        _, path, _ = request_line.split(b" ", 2)
        if path == b"/stats":
            payload = json.dumps(self.stats.summary()).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )
            return
        if path == b"/reset":
            self.stats.reset()
            self.transport.write(_NO_CONTENT)
            return
        now = time.time()
        stats = self.stats
        stats.count += 1
        if not stats.first:
            stats.first = now
        stats.last = now
        stats.paths.add(path)
        match = _T.search(body)
        if match:
            stats.delays.append(now - float(match.group(1)))
        self.transport.write(_NO_CONTENT)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Receiver(stats), "127.0.0.1", args.port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except KeyboardInterrupt:
        pass
