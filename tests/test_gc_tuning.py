"""The collector settings the daemon and its sender workers apply to themselves."""

from __future__ import annotations

import subprocess
import sys

from convoyd.gc_tuning import YOUNG_THRESHOLD


def test_tune_freezes_import_time_objects_and_raises_the_young_threshold() -> None:
    probe = (
        "import gc; from convoyd import gc_tuning; gc_tuning.tune();"
        " print(gc.get_threshold()[0], gc.get_freeze_count() > 1000, gc.isenabled())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(YOUNG_THRESHOLD), "True", "True"]
