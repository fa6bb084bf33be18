"""Keeping CPython's full collections off the hot path (issue 12).

A full collection scans every object the collector tracks, and a worker's long-lived objects
(cached order states, the case and SLA indexes) grow with the state it holds: measured at
1,000 events/s live, full collections paused the process 16 ms a minute after start and 107 ms
after two, every few seconds, and each found nothing to free (`collected 0`). A pause holds the
runtime thread and the HTTP handlers alike (the GIL), so it was the latency tail.

`Collector.tick` (called by the runtime thread) collects the young generations once a second and
then freezes what survived them (`gc.freeze()`: moved out of every later collection's view). The
full collections CPython still starts then see only what was promoted since the last tick. Frozen
objects are still freed by reference counting the moment nothing refers to them; only garbage
that is part of a reference cycle and became garbage after it was frozen stays. A full
collection of everything, frozen included, reclaims that (its pause is logged and measured like
the others). Its pause grows with what the worker holds (2.35 s over 1.57M objects at 200k
orders, where it freed 2,144), so it runs every `full_interval` seconds at most, and further
apart when it pauses long and frees little: pauses then take at most `pause_budget` of the
time, up to `max_full_interval` (`next_full_interval`).

Pauses are measured by a `gc.callbacks` hook that only appends to a list: taking a metric's lock
inside a collection could deadlock against the same lock held by the code the collection
interrupted. `tick` hands the durations to the histogram.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("o2c.runtime")

_SLOW_FULL = 0.1  # a full collection pausing longer is logged


class Collector:
    """The worker process's collection policy; one instance, driven by the runtime thread."""

    def __init__(
        self,
        observe: Callable[[int, float], None],
        *,
        interval: float = 1.0,
        full_interval: float = 600.0,
        max_full_interval: float = 3600.0,
        pause_budget: float = 0.001,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`observe(generation, seconds)` receives each collection's pause (from `tick`)."""
        self.observe = observe
        self.interval = interval
        self.full_interval = full_interval
        self.max_full_interval = max_full_interval
        self.pause_budget = pause_budget
        self.clock = clock
        self._pauses: list[tuple[int, float]] = []
        self._started: float | None = None
        now = clock()
        self._next_freeze = now + interval
        self._next_full = now + full_interval
        self._installed = False

    def install(self) -> None:
        """Freeze what exists now (modules, the app: it lives as long as the process) and start
        measuring pauses."""
        if not self._installed:
            gc.callbacks.append(self._on_collection)
            self._installed = True
        gc.collect(1)
        gc.freeze()

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._on_collection)
            self._installed = False

    def tick(self) -> None:
        now = self.clock()
        if now >= self._next_full:
            self._next_freeze = now + self.interval
            started = time.perf_counter()
            frozen = gc.get_freeze_count()
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
            took = time.perf_counter() - started
            wait = self.next_full_interval(took, frozen, found)
            self._next_full = now + wait
            if took > _SLOW_FULL:
                log.warning("full garbage collection: %.0f ms over %d frozen objects, %d unreachable freed;"
                            " the next in %.0f s", took * 1000, frozen, found, wait)
        elif now >= self._next_freeze:
            self._next_freeze = now + self.interval
            gc.collect(1)
            gc.freeze()
        if self._pauses:
            pauses, self._pauses = self._pauses, []
            for generation, seconds in pauses:
                self.observe(generation, seconds)

    def next_full_interval(self, took: float, scanned: int, freed: int) -> float:
        """Seconds until the next full collection after one that paused `took` seconds over
        `scanned` frozen objects and freed `freed`: `full_interval`, or longer so that pauses
        take at most `pause_budget` of the time, unless it freed over 1% of what it scanned."""
        if freed > scanned // 100:
            return self.full_interval
        return min(self.max_full_interval, max(self.full_interval, took / self.pause_budget))

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            if len(self._pauses) < 10_000:  # nobody ticking (a long restore): keep the first
                self._pauses.append((info["generation"], time.perf_counter() - self._started))
            self._started = None
