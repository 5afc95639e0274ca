"""benchmarks/bench.py --only tracing in its tiny smoke mode: every configuration runs, spans are
exported only with tracing on, and the ratios to tracing off are reported (no figure judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def test_tracing_scenario_runs_off_and_at_both_ratios(tmp_path: Path) -> None:
    out = tmp_path / "tracing.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench.py"),
            "--smoke",
            "--only",
            "tracing",
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
    figures = json.loads(out.read_text())["tracing"]
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
