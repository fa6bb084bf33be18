"""Business KPIs of the order agent's partitions (issue 16 point 4; the rules: tables/kpis.py,
docs/operations-api.md "Business KPIs").

The KPIs are sums over orders. Each order transition adds its change (its contribution after
minus before, plus the observations of the transition: first allocation, sync latency) to its
partition's sums, which live in the `kpis` store: one key per sum, so a commit writes the
sums that changed (a few per event), not the whole table, and they travel with the order
states in the same transactions (exactly once, restored with the tail like any store). A
partition whose sums were never initialised (a deployment that predates them) is summed once
from its stored states when it is assigned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streams.runtime.store import PartitionedStore
from tables.allocation import AllocationResult
from tables.kpis import KpiDelta, KpiTotals, contribution, first_fills, latency, totals_of
from tables.order_state import OrderState

_INITIALISED = b"\x00initialised"
"""Key present once a partition's sums account for every stored order."""


def _int(raw: bytes) -> int:
    return int(raw)


def _bytes(value: int) -> bytes:
    return str(value).encode()


class KpiSums:
    """The KPI sums of the active partitions, kept in `store` (PartitionedStore[int])."""

    def __init__(self, store: PartitionedStore[int], orders: PartitionedStore[OrderState]) -> None:
        self.store = store
        self.orders = orders
        self._keys: dict[tuple[Any, ...], bytes] = {}  # a sum's key -> its store key (cached)

    def _key(self, key: tuple[Any, ...]) -> bytes:
        found = self._keys.get(key)
        if found is None:
            if len(self._keys) >= 100_000:
                self._keys.clear()
            found = self._keys[key] = json.dumps(key, separators=(",", ":")).encode()
        return found

    def add(self, partition: int, delta: KpiDelta) -> None:
        get, put = self.store.get, self.store.put
        for key, value in delta.values.items():
            k = self._key(key)
            put(partition, k, (get(partition, k) or 0) + value)

    # ------------------------------------------------------------------ per transition

    @staticmethod
    def before(state: OrderState | None) -> KpiDelta | None:
        """What the order adds now: taken before an input changes it."""
        return contribution(state) if state is not None else None

    def changed(
        self,
        partition: int,
        before: KpiDelta | None,
        answered: frozenset[str] | None,
        state: OrderState,
        cause: Mapping[str, Any] | AllocationResult | None,
        now: int,
    ) -> None:
        """The order went from `before` (its contribution then; None: a new order) to `state`;
        `answered`: for an allocation answer, the lines answered before it."""
        delta = contribution(state)
        if before is not None:
            delta = delta - before
        if answered is not None:
            delta = delta + first_fills(answered, state)
        if isinstance(cause, Mapping) and cause.get("source") is not None and cause.get("occurred_at") is not None:
            delta = delta + latency(cause["source"], cause["occurred_at"], now)
        if delta:
            self.add(partition, delta)

    # ------------------------------------------------------------------ partitions

    def assigned(self, partitions: set[int]) -> None:
        for partition in partitions:
            if self.store.get(partition, _INITIALISED) is None:
                states = (OrderState.from_bytes(raw) for _, raw in self.orders.raw_items(partition))
                self.add(partition, KpiDelta(totals_of(states).values))
                self.store.put(partition, _INITIALISED, 1)

    def totals(self) -> KpiTotals:
        """The sums of this worker's active partitions (for `/kpis/local`; the HTTP thread)."""
        totals = KpiTotals()
        for partition in self.store.active_partitions():
            values = {}
            for key, value in self.store.items(partition):
                if key != _INITIALISED:
                    values[tuple(json.loads(key))] = value
            totals.merge(KpiTotals(values))
        return totals
