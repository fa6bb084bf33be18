"""Orders by status, region and channel on this worker's active partitions, for `/stats` and the
`o2c_orders_by_status` gauge.

Why not count on demand: that decodes every order the worker holds (a second or more per call at
10^5-10^6 orders, on the event loop). Instead each partition is counted once from the store when
first asked for, then kept up to date as the order agent publishes status changes. Anything that
rolls states back or moves partitions (the store discarding uncommitted values: rebalance, failed
commit) drops the counts; the next read counts again from what the store holds.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.runtime.store import PartitionedStore
    from tables.order import OrderState

Key = tuple[str, str, str]  # (status, region, channel)


def key_of(state: OrderState, status: str) -> Key:
    return (status, state.region or "unknown", state.channel or "unknown")


class StatusCounts:
    def __init__(self, store: PartitionedStore[OrderState]) -> None:
        self.store = store
        self.by_partition: dict[int, Counter[Key]] = {}
        store.on_discard.append(self.invalidate)

    def moved(self, partition: int, state: OrderState, before: str | None, after: str) -> None:
        """The order's published status went from `before` (None: first publication) to `after`."""
        counts = self.by_partition.get(partition)
        if counts is None or before == after:
            return  # not counted yet: the next read counts the partition from the store
        if before is not None:
            counts[key_of(state, before)] -= 1
        counts[key_of(state, after)] += 1

    def invalidate(self) -> None:
        self.by_partition.clear()

    def totals(self) -> Counter[Key]:
        """Counts over the active partitions (counting those not counted yet)."""
        total: Counter[Key] = Counter()
        for partition in self.store.active_partitions():
            counts = self.by_partition.get(partition)
            if counts is None:
                counts = self.by_partition[partition] = Counter(
                    key_of(state, state.last_status)
                    for _, state in self.store.items(partition)
                    if state.last_status is not None
                )
            # `moved` changes the counts on the runtime thread while this runs on the HTTP one:
            # copy them in one C-level step (atomic under the GIL), then add up the copy. Adding
            # them up directly raised "dictionary changed size during iteration" (a 500 on
            # /metrics once in a stress run of the SIGKILL test).
            total.update(dict(counts))
        return +total  # drop zero counts

    def summary(self) -> dict[str, dict[str, int]]:
        """`{"by_status": ..., "by_region": ..., "by_channel": ...}` (the `/stats/local` body)."""
        by: list[Counter[str]] = [Counter(), Counter(), Counter()]
        for key, n in self.totals().items():
            for i, value in enumerate(key):
                by[i][value] += n
        return {"by_status": dict(by[0]), "by_region": dict(by[1]), "by_channel": dict(by[2])}
