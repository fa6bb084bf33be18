"""Business KPIs of the order agent's partitions (issue 16 point 4; the rules: tables/kpis.py,
docs/operations-api.md "Business KPIs").

The KPIs are sums over orders. Each order transition adds its change (its contribution after
minus before, plus the observations of the transition: first allocation, sync latency) to its
partition's sums, which live in the `kpis` store: one value per metric and its first two
dimensions (e.g. receivables of one region and channel, by currency and due day), so a commit
writes the groups that changed (a few), not every sum (one changelog record per sum and commit
was more records than the order states themselves), and no value grows with the whole history
(one value per metric exceeded Kafka's 1 MB record limit at 100k orders: sums by day), and
they travel with the order states in the same transactions (exactly once, restored with the
tail like any store). A partition whose sums were never initialised (a deployment that predates
them) is summed once from its stored states when it is assigned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streams.runtime.store import PartitionedStore
from tables.allocation import AllocationResult
from tables.jsontext import encoder
from tables.kpis import KpiDelta, KpiTotals, contribution, first_fills, latency, totals_of
from tables.order_state import OrderState

_INITIALISED = b"\x00initialised"
_GROUPED = 3  # a store value holds the sums sharing the metric and its first two dimensions
"""Key present once a partition's sums account for every stored order."""
_NOTED = 20_000  # contributions noted for the next transition of their order (`KpiSums.before`)


Sums = dict[str, int]  # one metric's sums: JSON of the dimensions -> value


def decode_sums(raw: bytes) -> Sums:
    return json.loads(raw)


_sums_json = encoder(ensure_ascii=True, allow_nan=True)  # json.dumps(sums, separators=(",", ":"))


def encode_sums(sums: Sums) -> bytes:
    return _sums_json(sums).encode()


class KpiSums:
    """The KPI sums of the active partitions, kept in `store` (PartitionedStore[Sums], keyed by
    metric name)."""

    def __init__(self, store: PartitionedStore[Sums], orders: PartitionedStore[OrderState]) -> None:
        self.store = store
        self.orders = orders
        self._keys: dict[tuple[Any, ...], tuple[bytes, str]] = {}  # sum key -> (group, other dimensions)
        # (partition, order key) -> (the state object, its contribution) as its last transition
        # left it, most recent last: the `before` of its next transition without computing it.
        # A note keeps its state object alive: at most as many as the order store caches, so
        # that O2C_STATE_CACHE_ENTRIES bounds the states held in memory (twice over at worst).
        self._noted: dict[tuple[int, bytes], tuple[OrderState, KpiDelta]] = {}
        self._max_noted = min(_NOTED, orders.max_cached)

    def _key(self, key: tuple[Any, ...]) -> tuple[bytes, str]:
        found = self._keys.get(key)
        if found is None:
            if len(self._keys) >= 100_000:
                self._keys.clear()
            group = json.dumps(key[:_GROUPED], separators=(",", ":")).encode()
            found = self._keys[key] = (group, json.dumps(key[_GROUPED:], separators=(",", ":")))
        return found

    def add(self, partition: int, delta: Mapping[tuple[Any, ...], int]) -> None:
        if not delta:
            return
        get, put = self.store.get, self.store.put
        touched: dict[bytes, Sums] = {}
        for key, value in delta.items():
            metric, dims = self._key(key)
            sums = touched.get(metric)
            if sums is None:
                sums = touched[metric] = get(partition, metric) or {}
            total = sums.get(dims, 0) + value
            if total:
                sums[dims] = total
            else:
                sums.pop(dims, None)
        for metric, sums in touched.items():
            put(partition, metric, sums)

    # ------------------------------------------------------------------ per transition

    def before(self, partition: int, key: bytes, state: OrderState | None) -> KpiDelta | None:
        """What the order adds now: taken before an input changes it. Nothing changes a state
        between the order's transitions (each ends with `changed`), so the contribution noted
        by the last one is reused when the state is still that object (the store may have
        dropped it and decoded it again since); else it is computed. Taking it forgets the
        note: a transition that does not end with `changed` leaves none."""
        if state is None:
            return None
        noted = self._noted.pop((partition, key), None)
        if noted is not None and noted[0] is state:
            return noted[1]
        return contribution(state)

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
        after = contribution(state)
        noted = self._noted
        noted[(partition, state.order_id.encode())] = (state, after)
        if len(noted) > self._max_noted:  # the least recently changed order's note goes
            del noted[next(iter(noted))]
        # Most transitions move no sum (4 in 10 in bench_cpu): every difference would be 0 and left out.
        if before is not None and before.values == after.values:
            values: dict[tuple[Any, ...], int] = {}
        else:
            values = dict(after.values)
            if before is not None:
                for key, value in before.values.items():
                    values[key] = values.get(key, 0) - value
        if answered is not None:
            for key, value in first_fills(answered, state).values.items():
                values[key] = values.get(key, 0) + value
        if isinstance(cause, Mapping) and cause.get("source") is not None and cause.get("occurred_at") is not None:
            for key, value in latency(cause["source"], cause["occurred_at"], now).values.items():
                values[key] = values.get(key, 0) + value
        self.add(partition, {key: value for key, value in values.items() if value})

    # ------------------------------------------------------------------ partitions

    def assigned(self, partitions: set[int]) -> None:
        self._noted.clear()
        for partition in partitions:
            if self.store.get(partition, _INITIALISED) is None:
                states = (OrderState.from_bytes(raw) for _, raw in self.orders.raw_items(partition))
                self.add(partition, totals_of(states).values)
                self.store.put(partition, _INITIALISED, {})

    def totals(self) -> KpiTotals:
        """The sums of this worker's active partitions (for `/kpis/local`; the HTTP thread)."""
        totals = KpiTotals()
        for partition in self.store.active_partitions():
            values = {}
            for group, sums in self.store.items(partition):
                if group != _INITIALISED:
                    prefix = tuple(json.loads(group))
                    for dims, value in dict(sums).items():  # a copy: the runtime thread adds meanwhile
                        values[(*prefix, *json.loads(dims))] = value
            totals.merge(KpiTotals(values))
        return totals
