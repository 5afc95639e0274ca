"""The bounded soak (`make soak` runs it for 10 minutes): one minute at a steady rate with healthy,
slow and failing endpoints; RSS, file descriptors, loop tasks and in-flight attempts stay flat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import record_figures

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(240)
def test_one_minute_soak_stays_flat() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--seconds", "60"],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
        cwd=ROOT,
    )
    figures = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    record_figures("soak", figures)
    assert result.returncode == 0, (figures.get("problems"), result.stderr[-2000:])
    assert figures["samples"] >= 20
    assert "convoyd_event_loop_tasks_second_half_max" in figures
