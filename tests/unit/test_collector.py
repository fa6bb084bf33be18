"""The worker's garbage collection policy (streams/runtime/collector.py)."""

from __future__ import annotations

import gc
import weakref

import pytest

from streams.runtime.collector import Collector


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Node:
    """A cycle's member (a weak reference tells whether it was freed)."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def collector():
    clock = Clock()
    seen: list[tuple[int, float]] = []
    policy = Collector(lambda generation, seconds: seen.append((generation, seconds)), clock=clock,
                       interval=1.0, full_interval=60.0)
    policy.install()
    yield policy, clock, seen
    policy.uninstall()
    gc.unfreeze()
    gc.collect()


def cycle() -> Node:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


def test_survivors_leave_the_collectors_view_and_ordinary_garbage_is_still_freed(collector):
    policy, clock, _ = collector
    kept = [Node() for _ in range(100)]
    frozen_before = gc.get_freeze_count()
    policy.tick()  # not yet due
    assert gc.get_freeze_count() < frozen_before + len(kept)
    clock.now = 1.0
    policy.tick()
    assert gc.get_freeze_count() >= frozen_before + len(kept)
    alone = weakref.ref(kept.pop())  # no cycle: reference counting frees it, frozen or not
    assert alone() is None


def test_cyclic_garbage_among_frozen_objects_waits_for_the_full_collection(collector):
    policy, clock, _ = collector
    young = weakref.ref(cycle())
    gc.collect(1)  # a young cycle is collected as before
    assert young() is None
    held = [cycle()]
    old = weakref.ref(held[0])
    clock.now = 1.0
    policy.tick()  # frozen while alive
    held.clear()  # now garbage, in a cycle
    gc.collect()
    assert old() is not None, "a frozen cycle is out of the ordinary collections' view"
    clock.now = 60.0
    policy.tick()  # the full collection unfreezes everything first
    assert old() is None


def test_pauses_reach_the_metric_by_generation(collector):
    policy, clock, seen = collector
    gc.collect(0)
    gc.collect(2)
    assert seen == [], "durations are handed over by the runtime thread's tick, not inside a collection"
    policy.tick()
    generations = [generation for generation, _ in seen]
    assert 0 in generations and 2 in generations
    assert all(seconds >= 0 for _, seconds in seen)


def test_full_collections_that_pause_long_and_free_little_are_spaced_out():
    policy = Collector(lambda generation, seconds: None, full_interval=600.0, max_full_interval=3600.0,
                       pause_budget=0.001)
    assert policy.next_full_interval(0.05, 100_000, 10) == 600.0  # short pause: the base interval
    assert policy.next_full_interval(2.35, 1_569_419, 2_144) == 2350.0  # the 200k-order worker
    assert policy.next_full_interval(9.0, 5_000_000, 0) == 3600.0  # never further apart than this
    assert policy.next_full_interval(2.35, 1_569_419, 20_000) == 600.0  # freeing much: as often as before


def test_the_next_full_collection_is_scheduled_by_the_last_ones_pause():
    clock = Clock()
    policy = Collector(lambda generation, seconds: None, clock=clock, full_interval=60.0, pause_budget=1.0)
    clock.now = 60.0
    policy.tick()  # any pause of a test process is under 60 s: the base interval
    assert policy._next_full == 120.0
    policy.pause_budget = 1e-9  # now any pause is long for the budget: as far apart as allowed
    clock.now = 120.0
    policy.tick()
    assert policy._next_full == 120.0 + policy.max_full_interval
    gc.unfreeze()
