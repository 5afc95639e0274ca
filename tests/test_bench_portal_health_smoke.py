"""benchmarks/bench_portal_health.py in its tiny smoke mode, on both stores: it must keep
running and report every figure (none is judged at this size)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def test_the_health_bench_fills_measures_and_compares_on_both_stores(tmp_path: Path) -> None:
    out = tmp_path / "health.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_portal_health.py"),
            "--smoke",
            "--store",
            "both",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
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
