"""The per-endpoint circuit breaker (closed / open / half-open); one table owns every transition.

CLOSED lets everything through and watches a rolling window; it OPENs when the failure rate over
the window crosses a threshold (with a minimum number of attempts) or after K consecutive
failures. OPEN lets nothing through until its cooldown has passed; the first ``allow`` after
that moves to HALF_OPEN and lets exactly one probe through. The first result recorded while
HALF_OPEN decides: a success CLOSEs (cooldown and window reset), a failure re-OPENs with the
cooldown multiplied (capped). ``consecutive_trips`` counts openings without a success in
between; the endpoint state rule (architecture.md §3) turns the endpoint INACTIVE after N of them.

Time is a parameter and is expected to be monotonic; an earlier ``now`` than one already seen is
treated as the latest one seen, so a clock step cannot corrupt the window.

A breaker moves between cluster nodes with its endpoint as a ``BreakerSnapshot`` (kept by the
store as JSON text): its state, cooldown and run counts, with times by the engine's clock (the
wall clock, which every node shares). The rolling window and a probe in flight stay behind: the
new owner starts with neither.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from convoyd.errors import ConfigError


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerEvent(StrEnum):
    """What happened to the breaker; the guards that pick TRIP over FAILURE live in ``Breaker``."""

    SUCCESS = "success"  # an attempt succeeded
    FAILURE = "failure"  # an attempt failed without crossing a threshold
    TRIP = "trip"  # an attempt failed and crossed a threshold
    COOLDOWN_ELAPSED = "cooldown_elapsed"  # allow() was asked after the cooldown


CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN

# (state, event) -> next state. Anything not listed is illegal. Results recorded while OPEN come
# from attempts let through before it opened: they change no state (a late success still resets
# ``consecutive_trips``, since it is a success between trips).
TRANSITIONS: Mapping[tuple[BreakerState, BreakerEvent], BreakerState] = {
    (CLOSED, BreakerEvent.SUCCESS): CLOSED,
    (CLOSED, BreakerEvent.FAILURE): CLOSED,
    (CLOSED, BreakerEvent.TRIP): OPEN,
    (OPEN, BreakerEvent.SUCCESS): OPEN,
    (OPEN, BreakerEvent.FAILURE): OPEN,
    (OPEN, BreakerEvent.COOLDOWN_ELAPSED): HALF_OPEN,
    (HALF_OPEN, BreakerEvent.SUCCESS): CLOSED,
    (HALF_OPEN, BreakerEvent.FAILURE): OPEN,
}


def next_state(state: BreakerState, event: BreakerEvent) -> BreakerState:
    """The state after ``event``; ValueError when the table does not allow it (a bug)."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise ValueError(f"illegal breaker transition: {event.value} while {state.value}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """Thresholds of every endpoint's circuit breaker."""

    window: float = 60.0
    """Length of the rolling window the failure rate is measured over, in seconds."""
    buckets: int = 10
    """How many time buckets the window is split into: memory per endpoint is O(buckets), and
    attempts age out one bucket (window / buckets seconds) at a time."""
    min_requests: int = 10
    """Attempts the window must hold before the failure rate can open the breaker, so that one
    failure on a quiet endpoint is not a 100 % failure rate."""
    failure_rate_threshold: float = 0.5
    """Failure fraction (0 < x <= 1) over the window at or above which the breaker opens."""
    consecutive_failures: int = 10
    """Failures in a row that open the breaker regardless of the window, which catches a quiet
    endpoint that never reaches ``min_requests``; 0 disables this rule."""
    cooldown: float = 30.0
    """Seconds the breaker stays open the first time before letting a probe through."""
    cooldown_multiplier: float = 2.0
    """Factor applied to the cooldown each time a probe fails (>= 1)."""
    max_cooldown: float = 600.0
    """Upper bound of the cooldown, in seconds."""

    def __post_init__(self) -> None:
        checks = (
            ("window", math.isfinite(self.window) and self.window > 0, "must be > 0"),
            ("buckets", self.buckets >= 1, "must be >= 1"),
            ("min_requests", self.min_requests >= 1, "must be >= 1"),
            (
                "failure_rate_threshold",
                0 < self.failure_rate_threshold <= 1,
                "must be in (0, 1]",
            ),
            ("consecutive_failures", self.consecutive_failures >= 0, "must be >= 0 (0: off)"),
            ("cooldown", math.isfinite(self.cooldown) and self.cooldown > 0, "must be > 0"),
            ("cooldown_multiplier", self.cooldown_multiplier >= 1, "must be >= 1"),
            (
                "max_cooldown",
                math.isfinite(self.max_cooldown) and self.max_cooldown >= self.cooldown,
                "must be >= cooldown",
            ),
        )
        for name, ok, description in checks:
            if not ok:
                raise ConfigError(f"{name}: {description}, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change, for logs and metrics."""

    from_: BreakerState
    to: BreakerState
    reason: str


# The version of the JSON form: a node reading a form it does not know refuses it (ValueError),
# and the endpoint's breaker then starts afresh.
_SNAPSHOT_VERSION = 1
_COUNTS = ("consecutive_trips", "consecutive_failures")


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSnapshot:
    """What of a breaker moves to another node: everything but its window and a probe in flight.

    Times are the engine clock's (seconds since the epoch), so another node can use them.
    """

    state: BreakerState
    cooldown: float
    """The cooldown the next (or current) opening uses."""
    next_probe_at: float | None
    """OPEN: when the cooldown ends; HALF_OPEN: when a probe was last allowed to go (the new
    owner sends one at once). None exactly when CLOSED."""
    consecutive_trips: int
    consecutive_failures: int

    def __post_init__(self) -> None:
        if not isinstance(self.state, BreakerState):
            raise ValueError(f"state: not a breaker state: {self.state!r}")
        if not _is_number(self.cooldown) or not self.cooldown > 0:
            raise ValueError(f"cooldown: must be a finite number > 0, got {self.cooldown!r}")
        if self.state is CLOSED:
            if self.next_probe_at is not None:
                raise ValueError("next_probe_at: must be None while closed")
        elif not _is_number(self.next_probe_at):
            raise ValueError(
                f"next_probe_at: must be a finite number while {self.state.value},"
                f" got {self.next_probe_at!r}"
            )
        for name in _COUNTS:
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name}: must be an integer >= 0, got {value!r}")

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": _SNAPSHOT_VERSION,
                "state": self.state.value,
                "cooldown": self.cooldown,
                "next_probe_at": self.next_probe_at,
                "consecutive_trips": self.consecutive_trips,
                "consecutive_failures": self.consecutive_failures,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> BreakerSnapshot:
        """The snapshot ``to_json`` wrote; ValueError for anything else."""
        try:
            data: Any = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"breaker snapshot: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("breaker snapshot: not a JSON object")
        if data.get("v") != _SNAPSHOT_VERSION:
            raise ValueError(f"breaker snapshot: unknown version {data.get('v')!r}")
        missing = {"state", "cooldown", "next_probe_at", *_COUNTS} - data.keys()
        if missing:
            raise ValueError(f"breaker snapshot: missing {', '.join(sorted(missing))}")
        try:
            state = BreakerState(data["state"])
        except ValueError:
            raise ValueError(f"state: not a breaker state: {data['state']!r}") from None
        # Types are checked by __post_init__, as for a snapshot made in code.
        return cls(
            state=state,
            cooldown=data["cooldown"],
            next_probe_at=data["next_probe_at"],
            consecutive_trips=data["consecutive_trips"],
            consecutive_failures=data["consecutive_failures"],
        )


def _is_number(value: object) -> bool:
    # bool is an int, but true is no time.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Breaker:
    """Circuit breaker state for one endpoint. Not thread-safe; the engine owns it."""

    __slots__ = (
        "_bucket_ids",
        "_config",
        "_consecutive_failures",
        "_consecutive_trips",
        "_cooldown",
        "_failures",
        "_last_now",
        "_next_probe_at",
        "_probe_out",
        "_state",
        "_successes",
        "_width",
    )

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self._config = config or BreakerConfig()
        self._state = CLOSED
        self._cooldown = self._config.cooldown
        self._next_probe_at: float | None = None
        self._probe_out = False
        self._consecutive_failures = 0
        self._consecutive_trips = 0
        self._last_now = -math.inf
        # Ring of fixed buckets: slot i holds the counts of bucket number _bucket_ids[i]
        # (floor(now / width)); a slot whose id is stale is reused, which ages old counts out.
        n = self._config.buckets
        self._width = self._config.window / n
        self._bucket_ids: list[int | None] = [None] * n
        self._successes = [0] * n
        self._failures = [0] * n

    # -- read-only views -------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def config(self) -> BreakerConfig:
        return self._config

    @property
    def cooldown(self) -> float:
        """The cooldown the next (or current) opening uses."""
        return self._cooldown

    @property
    def consecutive_trips(self) -> int:
        """Times the breaker opened without a success in between."""
        return self._consecutive_trips

    @property
    def next_probe_at(self) -> float | None:
        """When ``allow`` will next let a probe through.

        OPEN: when the cooldown ends. HALF_OPEN with the probe released: already (the release
        time). None when no probe is awaited: CLOSED, or HALF_OPEN with the probe out.
        """
        if self._state is CLOSED or self._probe_out:
            return None
        return self._next_probe_at

    @property
    def probe_in_flight(self) -> bool:
        return self._probe_out

    def window_attempts(self, now: float) -> int:
        """Attempts recorded in the rolling window ending at ``now``."""
        successes, failures = self._window_counts(now)
        return successes + failures

    def failure_rate(self, now: float) -> float:
        """Failed fraction of the window's attempts; 0.0 when it holds none."""
        successes, failures = self._window_counts(now)
        total = successes + failures
        return failures / total if total else 0.0

    # -- moving between nodes ----------------------------------------------------------------

    @classmethod
    def from_snapshot(cls, config: BreakerConfig | None, snapshot: BreakerSnapshot) -> Breaker:
        breaker = cls(config)
        breaker.restore(snapshot)
        return breaker

    def snapshot(self) -> BreakerSnapshot:
        """The state to hand to the endpoint's next owner (see ``BreakerSnapshot``)."""
        return BreakerSnapshot(
            state=self._state,
            cooldown=self._cooldown,
            next_probe_at=None if self._state is CLOSED else self._next_probe_at,
            consecutive_trips=self._consecutive_trips,
            consecutive_failures=self._consecutive_failures,
        )

    def restore(self, snapshot: BreakerSnapshot) -> None:
        """Takes over a saved state, with an empty window and no probe out.

        The cooldown is kept within this node's configured bounds: during a rolling change of
        the configuration, the snapshot may come from a node with other ones.
        """
        config = self._config
        self._state = snapshot.state
        self._cooldown = min(max(snapshot.cooldown, config.cooldown), config.max_cooldown)
        self._next_probe_at = snapshot.next_probe_at
        self._probe_out = False
        self._consecutive_trips = snapshot.consecutive_trips
        self._consecutive_failures = snapshot.consecutive_failures
        self._clear_window()

    # -- commands --------------------------------------------------------------------------

    def allow(self, now: float) -> bool:
        """May an attempt start now? While not CLOSED, True means "this attempt is the probe"."""
        now = self._clamp(now)
        if self._state is CLOSED:
            return True
        if self._state is OPEN:
            assert self._next_probe_at is not None
            if now < self._next_probe_at:
                return False
            self._state = next_state(self._state, BreakerEvent.COOLDOWN_ELAPSED)
            self._probe_out = True
            return True
        if self._probe_out:
            return False
        self._probe_out = True
        return True

    def release(self, now: float) -> bool:
        """Give back a probe that was allowed but never sent (shutdown, endpoint paused).

        Another probe may then go at once. Returns whether a probe was released; in any other
        state an abandoned attempt needs no bookkeeping and this does nothing.
        """
        now = self._clamp(now)
        if self._state is not HALF_OPEN or not self._probe_out:
            return False
        self._probe_out = False
        self._next_probe_at = now
        return True

    def record(self, success: bool, now: float) -> Transition | None:
        """Account for a finished attempt; the state change it caused, if any."""
        now = self._clamp(now)
        if success:
            # Any success breaks the run of trips, even a late one while OPEN.
            self._consecutive_trips = 0
        before = self._state
        event, reason = self._event_for(success, now)
        after = next_state(before, event)
        self._state = after
        if after is before:
            return None
        # Every transition out of record() leaves HALF_OPEN or enters OPEN from CLOSED.
        self._probe_out = False
        if after is CLOSED:
            self._reset_after_recovery()
        else:
            if before is HALF_OPEN:
                self._cooldown = min(
                    self._cooldown * self._config.cooldown_multiplier, self._config.max_cooldown
                )
            self._next_probe_at = now + self._cooldown
            self._consecutive_trips += 1
            self._consecutive_failures = 0
        return Transition(before, after, reason)

    # -- internals -------------------------------------------------------------------------

    def _event_for(self, success: bool, now: float) -> tuple[BreakerEvent, str]:
        """The table event for a result, after the guards; counts it when CLOSED."""
        plain = BreakerEvent.SUCCESS if success else BreakerEvent.FAILURE
        if self._state is HALF_OPEN:
            # Whichever result arrives first (normally the probe's) decides.
            return plain, "probe succeeded" if success else "probe failed"
        if self._state is OPEN:
            return plain, ""
        self._count(success, now)
        if success:
            self._consecutive_failures = 0
            return plain, ""
        self._consecutive_failures += 1
        reason = self._trip_reason(now)
        if reason is None:
            return plain, ""
        return BreakerEvent.TRIP, reason

    def _reset_after_recovery(self) -> None:
        self._cooldown = self._config.cooldown
        self._next_probe_at = None
        self._consecutive_failures = 0
        # Failures from before the outage must not re-open a freshly closed breaker.
        self._clear_window()

    def _clear_window(self) -> None:
        n = self._config.buckets
        self._bucket_ids = [None] * n
        self._successes = [0] * n
        self._failures = [0] * n

    def _trip_reason(self, now: float) -> str | None:
        config = self._config
        successes, failures = self._window_counts(now)
        total = successes + failures
        if total >= config.min_requests and failures / total >= config.failure_rate_threshold:
            return (
                f"failure rate {failures / total:.0%} over {total} attempts in {config.window:g}s"
            )
        if config.consecutive_failures and (
            self._consecutive_failures >= config.consecutive_failures
        ):
            return f"{self._consecutive_failures} consecutive failures"
        return None

    def _clamp(self, now: float) -> float:
        if now > self._last_now:
            self._last_now = now
        return self._last_now

    def _bucket_id(self, now: float) -> int:
        return math.floor(now / self._width)

    def _count(self, success: bool, now: float) -> None:
        bucket = self._bucket_id(now)
        slot = bucket % self._config.buckets
        if self._bucket_ids[slot] != bucket:
            self._bucket_ids[slot] = bucket
            self._successes[slot] = 0
            self._failures[slot] = 0
        if success:
            self._successes[slot] += 1
        else:
            self._failures[slot] += 1

    def _window_counts(self, now: float) -> tuple[int, int]:
        # The window is the current bucket and the buckets - 1 before it: between
        # window - width and window seconds of history, depending on where in its bucket now is.
        newest = self._bucket_id(max(now, self._last_now))
        oldest = newest - self._config.buckets + 1
        successes = failures = 0
        for slot, bucket in enumerate(self._bucket_ids):
            if bucket is not None and oldest <= bucket <= newest:
                successes += self._successes[slot]
                failures += self._failures[slot]
        return successes, failures
