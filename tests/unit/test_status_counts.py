"""Status counts are read by the HTTP thread while the runtime thread changes them
(streams/processors/status_counts.py)."""

from __future__ import annotations

from collections import Counter

from streams.processors.status_counts import StatusCounts


class ChangingCounts(Counter):
    """Counts that the other thread changes while they are being added up: a new key appears
    in the middle of iterating over them."""

    def items(self):  # what Counter.update iterates over
        it = iter(super().items())
        first = next(it)
        self[("NEW", "EU", "EDI")] = 1  # the runtime thread, between two steps of the loop
        yield first
        yield from it  # RuntimeError: dictionary changed size during iteration


class FakeStore:
    on_discard: list = []

    def active_partitions(self) -> list[int]:
        return [0, 1]


def test_totals_survive_a_change_made_meanwhile_by_the_runtime_thread() -> None:
    counts = StatusCounts(FakeStore())  # type: ignore[arg-type]
    counts.by_partition[0] = Counter({("ACCEPTED", "EU", "EDI"): 1})
    counts.by_partition[1] = ChangingCounts({("ACCEPTED", "EU", "EDI"): 2, ("SHIPPED", "US", "WEB"): 1})
    totals = counts.totals()
    assert totals[("ACCEPTED", "EU", "EDI")] == 3 and totals[("SHIPPED", "US", "WEB")] == 1
