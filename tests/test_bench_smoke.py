"""The benchmarks in their tiny smoke modes: each must keep running and report every figure
(none is judged at these sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench_retention import YARDSTICK_REFERENCE, scaled_rate
from benchmarks.pgbench_support import mount_of

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def smoke(tmp_path: Path, *args: str, script: str = "bench.py", timeout: float = 240) -> Any:
    """Runs benchmarks/``script`` --smoke with ``args`` and answers the JSON it wrote."""
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_every_scenario_runs_and_reports(tmp_path: Path) -> None:
    figures = smoke(tmp_path)
    for scenario in ("ingest", "a_throughput", "latency", "b_fan_out", "c_isolation", "d_drain"):
        assert figures[scenario]["peak_rss_mb"] > 0, scenario
    assert figures["yardstick"]["per_second"] > 0
    assert figures["d_drain"]["delivered_per_s"] > 0


def test_throughput_runs_on_the_postgres_store(tmp_path: Path) -> None:
    figures = smoke(tmp_path, "--store", "postgres", "--only", "a_throughput", timeout=120)
    assert figures["store"] == "postgres"
    assert figures["a_throughput"]["delivered_per_s"] > 0
    server = figures["postgres_server"]
    if server["managed"]:
        # The bench's own server syncs like the SQLite store does, unlike the test suite's.
        assert (server["fsync"], server["full_page_writes"]) == ("on", "on")
    if server["cpu_measured"]:
        assert figures["a_throughput"]["postgres_cpu_s_per_1000"] > 0
        assert "postgres_cpu_s_per_1000" in figures["postgres_targets"]


def test_bench_smoke_runs_one_and_two_nodes_on_postgres(tmp_path: Path) -> None:
    args = ("--store", "postgres", "--only", "cluster", "--nodes", "1", "2")
    runs = smoke(tmp_path, *args, timeout=180)["cluster"]
    assert runs["nodes_1"]["delivered_per_s"] > 0
    assert runs["nodes_2"]["shards"] == [128, 128]


def test_retention_runs_pruning_off_and_on_on_sqlite(tmp_path: Path) -> None:
    figures = smoke(tmp_path, "--only", "retention", timeout=120)["retention"]
    for config in ("off", "on"):
        assert figures[config]["delivered_of_sent"] == 1.0, figures
        assert 0 < figures[config]["p50_ms"] <= figures[config]["p99_ms"], figures
        assert figures[config]["store_bytes_end"] > 0, figures
    # Pruning ran inside the measured window with it on, and never with it off.
    assert min(figures["on"]["events_pruned_in_window"]) > 0, figures
    assert figures["off"]["events_pruned_in_window"] == [0], figures
    ratio = figures["p99_ratio"]
    assert ratio["value"] > 0 and ratio["target_max"] == 1.2, figures
    assert ratio["met"] is None  # a smoke window is too short to judge
    # A smoke run keeps its rate whatever the machine's yardstick.
    assert figures["setup"]["offered_per_s"] == 50, figures


@pytest.mark.parametrize(
    ("rate", "yardstick", "expected"),
    [
        (1000, None, 1000),  # unknown: as set
        (1000, YARDSTICK_REFERENCE, 1000),
        (1000, 2 * YARDSTICK_REFERENCE, 1000),  # a faster machine is not offered more
        (1000, YARDSTICK_REFERENCE / 2, 500),
        (1000, 3_333, 333),
    ],
)
def test_the_retention_rate_follows_a_slower_machine(
    rate: float, yardstick: float | None, expected: float
) -> None:
    assert scaled_rate(rate, yardstick) == expected


_MOUNTS = """\
/dev/vda / ext4 rw,relatime,discard 0 0
proc /proc proc rw,nosuid 0 0
/dev/loop0 /srv/pg ext4 rw,relatime 0 0
/dev/loop1 /srv/pg\\040old xfs rw,discard 0 0
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/var/lib/x", {"mount_point": "/", "fs": "ext4", "online_discard": True}),
        ("/srv/pg/data", {"mount_point": "/srv/pg", "fs": "ext4", "online_discard": False}),
        ("/srv/pg", {"mount_point": "/srv/pg", "fs": "ext4", "online_discard": False}),
        # A longer name that merely starts like a mount point is not inside it.
        ("/srv/pgx/data", {"mount_point": "/", "fs": "ext4", "online_discard": True}),
        ("/srv/pg old/data", {"mount_point": "/srv/pg old", "fs": "xfs", "online_discard": True}),
    ],
)
def test_the_postgres_data_dir_names_its_file_system(path: str, expected: dict[str, Any]) -> None:
    assert mount_of(Path(path), _MOUNTS) == expected


def test_tracing_scenario_runs_off_and_at_both_ratios(tmp_path: Path) -> None:
    figures = smoke(tmp_path, "--only", "tracing")["tracing"]
    assert set(figures) == {"off", "ratio_0.01", "ratio_1"}
    for name, row in figures.items():
        assert row["delivered_per_s"] > 0, name
        assert len(row["runs_delivered_per_s"]) == 1, name  # smoke: each configuration once
    assert figures["off"]["spans_per_delivery"] == 0
    # Every delivery of a fully sampled run has its attempt span and its event's root span.
    assert figures["ratio_1"]["spans_per_delivery"] >= 2
    assert figures["ratio_0.01"]["spans_per_delivery"] < figures["ratio_1"]["spans_per_delivery"]
    for name in ("ratio_0.01", "ratio_1"):
        assert figures[name]["throughput_vs_off"] > 0
        assert figures[name]["cpu_per_delivery_vs_off"] > 0


def test_the_health_bench_fills_measures_and_compares_on_both_stores(tmp_path: Path) -> None:
    figures = smoke(tmp_path, "--store", "both", script="bench_portal_health.py")
    deliveries = figures["size"]["deliveries"]
    for store in ("sqlite", "postgres"):
        got = figures[store]
        assert got["deliveries"] == deliveries, store
        # A week of one endpoint's hours, read back from what record() counted.
        assert 24 < got["hours_read"] <= 7 * 24 + 6, store
        for figure in ("query_ms", "section_ms", "sparklines_ms"):
            assert 0 < got[figure]["median"] <= got[figure]["p95"], (store, figure)
        assert got["sparklines_endpoints"] == figures["size"]["endpoints"]
        assert got["page_target_ms"] == 100.0 and isinstance(got["met"], bool)
        runs = got["overhead"]["per_1000_records"]
        assert len(runs["on"]) == len(runs["off"]) == 2 * figures["size"]["overhead_pairs"]
        assert got["overhead"]["wall_ms_on_over_off"] > 0
        assert got["overhead"]["cpu_ms_on_over_off"] > 0
