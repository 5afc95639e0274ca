"""The engine's in-flight budget: which pool each attempt takes its slot from, and when it moves.

The budget bounds the attempts in flight, and with them the sockets open and the memory held.
An endpoint that accepts connections and never answers holds each of its slots until its
``http_timeout``; were every attempt drawn from one shared cap, enough such endpoints (one attempt
each) would hold all of it and delay every healthy endpoint by up to that timeout. So there are
two pools:

- the **main pool** (``max_in_flight``) for attempts to endpoints that answer quickly;
- the **slow pool** (``max_slow_in_flight``) for attempts that have run longer than
  ``slow_attempt_after`` and for every attempt to an endpoint that is slow now (an attempt of its
  is past the threshold, or its last one took longer).

An attempt that crosses the threshold moves from the main pool to the slow pool (when the slow
pool has room), so a hanging endpoint leaves the main pool within about ``slow_attempt_after``
and never enters it again until it answers quickly. An endpoint with no finished attempt yet
cannot be told apart from a hanging one: such endpoints share at most half of the main pool, so
however many new endpoints hang, the endpoints known to answer quickly keep the other half.

At most ``max_in_flight + max_slow_in_flight`` attempts are ever in flight.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterator

from convoyd.delivery.lane import Lane


class Kind(enum.Enum):
    """Which budget an attempt is counted in."""

    FAST = "fast"  # main pool, the endpoint has answered quickly before
    NEW = "new"  # main pool, the endpoint has no finished attempt yet (at most half the pool)
    SLOW = "slow"  # slow pool


class Flight:
    """One attempt in flight: when it started and which budget holds its slot."""

    __slots__ = ("done", "kind", "lane", "old", "started")

    def __init__(self, lane: Lane, kind: Kind, started: float) -> None:
        self.lane = lane
        self.kind = kind
        self.started = started
        self.old = False  # has run longer than slow_attempt_after (counted in lane.old)
        self.done = False


class Capacity:
    """Counts the attempts in each budget and parks lanes that wait for room in one."""

    def __init__(self, *, max_in_flight: int, max_slow_in_flight: int, slow_after: float) -> None:
        self.slow_after = slow_after
        self.max_main = self.max_new = self.max_slow = 0
        self.set_limits(max_in_flight=max_in_flight, max_slow_in_flight=max_slow_in_flight)
        self.main = 0  # FAST and NEW attempts
        self.new = 0
        self.slow = 0
        self._young: deque[Flight] = deque()  # every flight, in start order, until it is old
        self._stuck: list[Flight] = []  # old, still in the main pool: the slow pool was full
        self._parked: dict[Kind, deque[Lane]] = {kind: deque() for kind in Kind}
        self.parked = 0  # lanes parked, of every kind

    def set_limits(self, *, max_in_flight: int, max_slow_in_flight: int) -> None:
        self.max_main = max_in_flight
        self.max_new = max(1, max_in_flight // 2)
        self.max_slow = max_slow_in_flight

    @property
    def in_flight(self) -> int:
        return self.main + self.slow

    def kind_of(self, lane: Lane) -> Kind:
        if lane.old or lane.slow:
            return Kind.SLOW
        return Kind.FAST if lane.proven else Kind.NEW

    def room(self, kind: Kind) -> int:
        if kind is Kind.SLOW:
            return self.max_slow - self.slow
        main = self.max_main - self.main
        return main if kind is Kind.FAST else min(main, self.max_new - self.new)

    def full(self) -> bool:
        """No attempt of any kind can start."""
        return self.main >= self.max_main and self.slow >= self.max_slow

    # -- attempts -------------------------------------------------------------------------

    def start(self, lane: Lane, kind: Kind, now: float) -> Flight:
        flight = Flight(lane, kind, now)
        if kind is Kind.SLOW:
            self.slow += 1
        else:
            self.main += 1
            if kind is Kind.NEW:
                self.new += 1
        self._young.append(flight)
        return flight

    def finish(self, flight: Flight, now: float) -> None:
        """Frees the flight's slot and judges its endpoint by how long the attempt took."""
        flight.done = True
        self._release(flight)
        lane = flight.lane
        if flight.old:
            lane.old -= 1
        if now - flight.started >= self.slow_after:
            lane.slow = True
        else:
            lane.slow = False
            lane.proven = True

    def age(self, now: float) -> bool:
        """Marks flights past the threshold slow and moves them to the slow pool while it has room;
        True when that freed room in the main pool."""
        young = self._young
        cutoff = now - self.slow_after
        while young and (young[0].done or young[0].started <= cutoff):
            flight = young.popleft()
            if flight.done:
                continue
            flight.old = True
            flight.lane.old += 1
            if flight.kind is not Kind.SLOW:
                self._stuck.append(flight)
        if self._stuck:
            self._stuck = [f for f in self._stuck if not f.done]
            moving = self._stuck[: max(0, self.max_slow - self.slow)]
            del self._stuck[: len(moving)]
            for flight in moving:
                self._release(flight)
                flight.kind = Kind.SLOW
                self.slow += 1
            return bool(moving)
        return False

    def _release(self, flight: Flight) -> None:
        if flight.kind is Kind.SLOW:
            self.slow -= 1
        else:
            self.main -= 1
            if flight.kind is Kind.NEW:
                self.new -= 1

    # -- lanes waiting for room -----------------------------------------------------------

    def park(self, lane: Lane, kind: Kind) -> None:
        lane.parked = kind
        self._parked[kind].append(lane)
        self.parked += 1

    def unpark(self, lane: Lane) -> None:
        """Takes a parked lane out early: its kind changed (its own attempt answered quickly)."""
        if lane.parked is not None:
            self._parked[lane.parked].remove(lane)
            lane.parked = None
            self.parked -= 1

    def release(self) -> Iterator[Lane]:
        """Parked lanes, oldest first, as many of each kind as may start now."""
        for kind, parked in self._parked.items():
            for _ in range(min(len(parked), max(0, self.room(kind)))):
                lane = parked.popleft()
                lane.parked = None
                self.parked -= 1
                yield lane
