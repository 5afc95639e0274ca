"""Garbage-collector settings for convoyd's long-running processes (the daemon, sender workers).

Every delivery allocates a few dozen short-lived containers (dataclasses, tuples, protobuf
wrappers, aiohttp's request objects). With CPython's default threshold of 700 the collector
ran about 80 young collections a second during the benchmark's scenario (a) and took 6-9 % of
the daemon's main thread, in pauses that stall the event loop (measured with gc.callbacks:
320-450 ms per 5 s). At 50,000 it runs about ten times a minute and takes under 1 %
(20-35 ms per 5 s).

Nearly all of convoyd's garbage is freed by reference counting the moment it is dropped; the
collector only reclaims reference cycles, which are few and small here: waiting for 50,000
net new containers holds them a little longer (the daemon's peak RSS in scenario (a) rose by
about 10 MB). Full collections still run (every 200 young ones), and gc.freeze() first moves
everything created at import time out of the collector's way, since it lives as long as the
process.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def tune() -> None:
    """Applies convoyd's collector settings to this process; call once, after imports."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 10)
