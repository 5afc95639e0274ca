"""The benchmark harness in its tiny smoke mode: it must keep running (no figures are judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def test_every_scenario_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    for scenario in ("ingest", "a_throughput", "latency", "b_fan_out", "c_isolation", "d_drain"):
        assert figures[scenario]["peak_rss_mb"] > 0, scenario
    assert figures["yardstick"]["per_second"] > 0
    assert figures["d_drain"]["delivered_per_s"] > 0


def test_throughput_runs_on_the_postgres_store(tmp_path: Path) -> None:
    out = tmp_path / "bench-pg.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench.py"),
            "--smoke",
            "--store",
            "postgres",
            "--only",
            "a_throughput",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
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
    out = tmp_path / "cluster.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench.py"),
            "--smoke",
            "--store",
            "postgres",
            "--only",
            "cluster",
            "--nodes",
            "1",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(out.read_text())["cluster"]
    assert runs["nodes_1"]["delivered_per_s"] > 0
    assert runs["nodes_2"]["shards"] == [128, 128]


def test_retention_runs_pruning_off_and_on_on_sqlite(tmp_path: Path) -> None:
    out = tmp_path / "retention.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench.py"),
            "--smoke",
            "--only",
            "retention",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())["retention"]
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
