"""The in-flight budget on its own: which pool an attempt takes, when it moves, what it bounds."""

from __future__ import annotations

import pytest

from convoyd.core.breaker import BreakerConfig
from convoyd.core.model import Endpoint, EndpointSpec, EndpointStatus
from convoyd.delivery.capacity import Capacity, Kind
from convoyd.delivery.lane import Lane


def lane(i: int = 0) -> Lane:
    endpoint = Endpoint(
        id=f"ep_{i}",
        spec=EndpointSpec(url=f"http://127.0.0.1:9/{i}"),
        status=EndpointStatus.ACTIVE,
        status_reason="",
        status_changed_at=0.0,
        secrets=(),
        created_at=0.0,
        updated_at=0.0,
    )
    return Lane(endpoint, BreakerConfig())


def budget(main: int = 4, slow: int = 3) -> Capacity:
    return Capacity(max_in_flight=main, max_slow_in_flight=slow, slow_after=1.0)


@pytest.mark.parametrize(
    ("history", "kind"),
    [
        ((), Kind.NEW),  # no finished attempt: cannot be told from a hanging endpoint
        ((0.2,), Kind.FAST),
        ((1.5,), Kind.SLOW),  # its last attempt took longer than the threshold
        ((1.5, 0.2), Kind.FAST),  # answered quickly again
        ((0.2, 1.5), Kind.SLOW),
    ],
)
def test_an_endpoint_is_judged_by_its_last_attempt(history: tuple[float, ...], kind: Kind) -> None:
    capacity, one = budget(), lane()
    for took in history:
        capacity.finish(capacity.start(one, capacity.kind_of(one), 0.0), took)
    assert capacity.kind_of(one) is kind
    assert capacity.in_flight == 0


def test_new_endpoints_share_half_of_the_main_pool() -> None:
    capacity = budget(main=4)
    capacity.start(lane(1), Kind.NEW, 0.0)
    capacity.start(lane(2), Kind.NEW, 0.0)
    assert capacity.room(Kind.NEW) == 0
    assert capacity.room(Kind.FAST) == 2


def test_an_attempt_past_the_threshold_moves_to_the_slow_pool_while_it_has_room() -> None:
    capacity = budget(main=4, slow=1)
    first, second = lane(1), lane(2)
    a = capacity.start(first, Kind.NEW, 0.0)
    capacity.start(second, Kind.NEW, 0.5)
    assert not capacity.age(0.9)  # nothing has run a second yet
    assert capacity.age(1.2)
    assert (capacity.main, capacity.new, capacity.slow) == (1, 1, 1)
    assert capacity.kind_of(first) is Kind.SLOW
    # The slow pool is full: the second stays in the main pool (and its share) until it is not.
    assert not capacity.age(1.6)
    assert (capacity.main, capacity.new, capacity.slow) == (1, 1, 1)
    assert capacity.kind_of(second) is Kind.SLOW
    capacity.finish(a, 15.0)
    assert capacity.age(15.1)
    assert (capacity.main, capacity.new, capacity.slow) == (0, 0, 1)


def test_the_pools_bound_what_is_in_flight() -> None:
    capacity, started = budget(main=4, slow=3), 0
    for step in range(100):  # endpoints that never answer, started whenever there is room
        one = lane(step)
        kind = capacity.kind_of(one)
        if capacity.room(kind) > 0:
            capacity.start(one, kind, float(step))
            started += 1
        capacity.age(float(step))
        assert capacity.in_flight <= 4 + 3
        assert capacity.room(Kind.FAST) >= 2  # half the main pool stays free for known ones
    assert started == capacity.in_flight == 3 + 2
