"""PostgreSQL for benchmarks/bench.py: the server, a database per scenario, its CPU, the verdicts.

The server is tests/pgserver.py's: a fresh one (initdb, a free loopback port) unless
CONVOYD_TEST_POSTGRES_DSN names one to use. A server started here runs with ``fsync`` and
``full_page_writes`` on, which the test suite turns off: the SQLite store syncs every group
commit to disk, and a comparison against a server that never syncs would measure nothing.

PostgreSQL's CPU is summed over the postmaster (its pid from the data dir's postmaster.pid) and
every process under it, plus what the postmaster's reaped children used (``cutime``/``cstime``),
so a backend or autovacuum worker that exits inside the window still counts.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench import TICKS, cpu_seconds, pids_of
from tests.pgserver import PostgresServer, run_blocking

# Targets of the PostgreSQL store on this benchmark (the numbers).
THROUGHPUT_RATIO_TARGET = 0.6  # (a) delivered/s, postgres over sqlite
CPU_PER_1000_TARGET = 0.15  # PostgreSQL's own CPU seconds per 1,000 deliveries in (a)
LATENCY_P99_TARGET_MS = 50.0  # accept → delivered at LATENCY_TARGET_RATE events/s offered
LATENCY_TARGET_RATE = 1000
# "Flat as on SQLite": convoyd's peak RSS over the drain at most this much above SQLite's.
DRAIN_PEAK_RSS_RATIO_TARGET = 1.25
# A server as an operator would run one: durable (the test suite's turns fsync off), and with
# room for WAL between checkpoints so that a run is not timed across a checkpoint storm.
DURABLE = {
    "fsync": "on",
    "full_page_writes": "on",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
}
_SHOWN = (*DURABLE, "synchronous_commit", "max_connections")


async def _show(dsn: str, names: tuple[str, ...]) -> dict[str, Any]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        shown: dict[str, Any] = {name: await connection.fetchval(f"SHOW {name}") for name in names}
        # Read while the session lasts: its backend, a child of the postmaster, exits with it.
        shown["parent_pid"] = _parent_of(await connection.fetchval("SELECT pg_backend_pid()"))
        shown["server_version"] = await connection.fetchval("SHOW server_version")
        return shown
    finally:
        await connection.close()


def _parent_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reaped_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / TICKS


def mount_of(path: Path, mounts: str | None = None) -> dict[str, Any]:
    """The file system ``path`` lies on, from /proc/mounts (or ``mounts``, its text): its type
    and whether it is mounted with online ``discard``. With it, ext4 trims the blocks of a
    file as their truncation commits, and every fsync meanwhile waits: dropping a partition of
    hundreds of megabytes then stalls the server's WAL flushes (docs/operations.md,
    "Retention")."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return {}
    target = str(path.resolve())
    best: tuple[str, str, list[str]] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > len(best[0])):
            best = (point, fields[2], fields[3].split(","))
    if best is None:
        return {}
    point, kind, options = best
    return {"mount_point": point, "fs": kind, "online_discard": "discard" in options}


class BenchPostgres:
    """One PostgreSQL server for a bench run; a fresh database for each scenario run on it.
    ``parent``: where its data directory is made (None: the system's temporary directory)."""

    def __init__(self, parent: Path | None = None) -> None:
        self.server = PostgresServer.from_env(settings=DURABLE, parent=parent)
        self.postmaster: int | None = None
        self.info: dict[str, Any] = {}
        self._made = 0

    def start(self) -> BenchPostgres:
        self.server.start()
        admin = self.server.dsn_admin()
        shown = run_blocking(lambda: _show(admin, _SHOWN))
        if self.server.managed:
            pid_file = self.server.data_dir / "postmaster.pid"
            self.postmaster = int(pid_file.read_text().split()[0])
        else:
            # A server of the caller's: measurable only if it runs on this machine (in our pid
            # namespace), where our session's backend is a child of its postmaster; what other
            # clients of that server do is then counted too.
            self.postmaster = shown["parent_pid"]
        del shown["parent_pid"]
        self.info = {
            "managed": self.server.managed,
            **shown,
            "cpu_measured": self.postmaster is not None,
        }
        if self.server.managed:
            self.info["data_dir"] = mount_of(self.server.data_dir)
        return self

    def stop(self) -> None:
        self.server.stop()

    def cpu_seconds(self) -> float:
        """CPU seconds the server's processes have used so far (its postmaster must be known)."""
        assert self.postmaster is not None
        return cpu_seconds(pids_of(self.postmaster)) + _reaped_cpu_seconds(self.postmaster)

    @contextlib.contextmanager
    def daemon_env(self, scenario: str) -> Iterator[dict[str, str]]:
        """The daemon's store settings for one scenario run, on a database made for it."""
        self._made += 1
        name = f"bench_{self._made}_{scenario.lower()}"
        dsn = self.server.create_database(name)
        try:
            yield {"CONVOYD_STORE": "postgres", "CONVOYD_POSTGRES_DSN": dsn}
        finally:
            self.server.drop_database(name)


def _ratio(by_store: dict[str, dict[str, Any]], scenario: str, figure: str) -> float | None:
    try:
        low = by_store["sqlite"][scenario][figure]
        high = by_store["postgres"][scenario][figure]
    except KeyError:
        return None
    return round(high / low, 2) if low else None


def ratios(
    by_store: dict[str, dict[str, Any]], against_yardstick: dict[str, float]
) -> dict[str, Any]:
    """postgres ÷ sqlite for the figures where more is better (throughputs)."""
    pairs = {
        "ingest_single": ("ingest", "single_events_per_s"),
        "ingest_batched": ("ingest", "batched_events_per_s"),
        "a_throughput": ("a_throughput", "delivered_per_s"),
        "b_fan_out": ("b_fan_out", "delivered_per_s"),
        "d_drain": ("d_drain", "delivered_per_s"),
    }
    out: dict[str, Any] = {}
    for key, (scenario, figure) in pairs.items():
        value = _ratio(by_store, scenario, figure)
        if value is not None:
            out[key] = value
    if "sqlite" in against_yardstick and "postgres" in against_yardstick:
        # Each store's (a) read against the yardstick runs around it: the machine's drift
        # between the two (a) runs taken out.
        out["a_throughput_vs_yardstick"] = round(
            against_yardstick["postgres"] / against_yardstick["sqlite"], 2
        )
    return out


def verdicts(by_store: dict[str, dict[str, Any]], found: dict[str, Any]) -> dict[str, Any]:
    """The PostgreSQL store's figures against its targets; ``found`` holds the ratios."""
    pg = by_store.get("postgres", {})
    out: dict[str, Any] = {}
    if "a_throughput" in found:
        out["a_throughput_ratio"] = {
            "value": found["a_throughput"],
            "target_min": THROUGHPUT_RATIO_TARGET,
            "met": found["a_throughput"] >= THROUGHPUT_RATIO_TARGET,
        }
    cpu = pg.get("a_throughput", {}).get("postgres_cpu_s_per_1000")
    if cpu is not None:
        out["postgres_cpu_s_per_1000"] = {
            "value": cpu,
            "target_max": CPU_PER_1000_TARGET,
            "met": cpu <= CPU_PER_1000_TARGET,
        }
    latency = pg.get("latency")
    if latency:
        out["latency_p99_ms"] = {
            "value": latency["p99_ms"],
            "offered_per_s": latency["offered_per_s"],
            "target_max": LATENCY_P99_TARGET_MS,
            # The target is for 1,000 events/s; a smoke run offers less and is not judged.
            "met": latency["p99_ms"] <= LATENCY_P99_TARGET_MS
            if latency["offered_per_s"] >= LATENCY_TARGET_RATE
            else None,
        }
    drain = pg.get("d_drain")
    if drain:
        verdict: dict[str, Any] = {
            "backlog": drain["backlog"],
            "rss_start_mb": drain["rss_start_mb"],
            "peak_rss_mb": drain["peak_rss_mb"],
            "rss_after_mb": drain["rss_after_mb"],
        }
        sqlite_drain = by_store.get("sqlite", {}).get("d_drain")
        if sqlite_drain:
            verdict["sqlite_peak_rss_mb"] = sqlite_drain["peak_rss_mb"]
            verdict["target_max_ratio"] = DRAIN_PEAK_RSS_RATIO_TARGET
            verdict["met"] = (
                drain["peak_rss_mb"] <= sqlite_drain["peak_rss_mb"] * DRAIN_PEAK_RSS_RATIO_TARGET
            )
        out["d_drain_rss"] = verdict
    return out
