"""SLA deadlines in the running order agent (SPEC §6): which partitions are checked, when, and
how a breach found by a timer still leaves exactly once.

The pure rules are in tables/sla.py, the index in streams/processors/due_index.py; docs/sla.md explains the
design. Here:

- **Only active partitions.** The runtime calls `open` for the partitions assigned to this worker
  (after their stores are restored, before their first record) and `close` when they are revoked.
  Only open, ready indexes are checked.
- **Index lifecycle.** On assignment the index is trusted only if its covered offset equals
  the table partition's persisted changelog position; otherwise it is rebuilt from the stored
  states. After each commit that leaves a partition nothing uncommitted, the index is marked as
  covering that position; any later write removes the mark, so an index that ran ahead of the
  committed states (crash, aborted transaction) is rebuilt.
- **Changes reach the index once per key per batch** (`touch`, then `sync`): before each
  check and at the end of every batch, the touched orders are rescheduled from their states.
- **Clocks.** `wall`: the runtime's timer checks every `O2C_SLA_CHECK_INTERVAL` seconds. `event`:
  the order agent checks a partition inline when an input event advances its stream time, before
  applying the event. Stream time is persisted per partition in the `sla-stream-time` store,
  in the same transactions as the states, so a restart resumes it exactly.
- **Exactly once without an input event.** A timer check runs on the runtime thread between
  batches; its records join the worker's open transaction, committed with the next commit like
  any other output. The breach itself is recorded in the order state (`record_breach`), written
  to the changelog in that same transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from streams.metrics import METRICS
from streams.processors import sla_rebuild
from streams.processors.due_index import DEFAULT_LIMIT, DueIndex, DueIndexes, StreamClock
from streams.processors.sla_rebuild import rebuild, rebuild_in_helpers, stored_states
from streams.runtime.processor import local_db_options, spread, table_store
from streams.runtime.store import PartitionedStore
from streams.settings import Settings
from tables.exceptions import BusinessException
from tables.order_state import OrderState
from tables.risk import DEFAULT_THRESHOLDS, consumed_bp, level_at, open_milestones, risk_order
from tables.sla import breach_due_and_pending, merge_breach_listings, pending_deadlines

log = logging.getLogger("o2c.sla")

Send = Callable[..., None]
OnDue = Callable[[Send, int, bytes, OrderState, int], bool]

_STREAM_TIME_KEY = b"stream-time"
_INF = float("inf")




class SlaChecks:
    """The due indexes, clock and checks of the order table's actively owned partitions."""

    def __init__(self, settings: Settings, store: PartitionedStore[OrderState], on_due: OnDue) -> None:
        """`on_due(send, partition, key, state, now)`: breach what is overdue in the order's
        state and publish it; True when the state changed (the order agent does this)."""
        self.store = store
        self.on_due = on_due
        self.policy = settings.sla_policy
        self.kind = settings.sla_clock
        self.thresholds = settings.risk_thresholds
        self.settings = settings  # what a rebuild helper needs (sla_rebuild.py)
        self.helpers = settings.restore_helpers
        self.clock = StreamClock(self.kind)
        self.indexes = DueIndexes(settings.data_dir / f"{settings.app_id}-sla-due", local_db_options(settings))
        self.ready: dict[int, DueIndex] = {}  # partition -> index, open and current
        # orders changed since their last `sync` -> their pending deadlines, None: recompute
        self.touched: dict[int, dict[bytes, dict[str, int] | None]] = {}
        self.horizon: dict[int, float] = {}  # no indexed deadline of the partition is earlier
        # no deadline of an order touched since the partition's last `sync` is earlier
        # (-inf: one was touched without its deadlines)
        self.touched_low: dict[int, float] = {}
        self.stream_times: PartitionedStore[int] | None = None
        store.track_replays = True  # `_open` catches the index up on what a restore replayed
        if self.kind == "event":  # stream time (highest occurred_at applied) per partition
            self.stream_times = table_store(settings, "sla-stream-time", int, lambda v: str(v).encode())

    # ------------------------------------------------------------------ per event

    def observe(self, partition: int, occurred_at: int) -> bool:
        """An input event of the partition is about to be applied. With the event clock:
        advance (and persist) the stream time; True when it advanced, i.e. the caller must
        check the partition before applying the event."""
        if self.stream_times is None or not self.clock.observe(partition, occurred_at):
            return False
        self.stream_times.put(partition, _STREAM_TIME_KEY, occurred_at)
        return True

    def now(self, partition: int) -> int | None:
        return self.clock.now(partition)

    def breach(
        self, partition: int, key: bytes, state: OrderState, now: int | None
    ) -> tuple[list[dict[str, Any]], list[BusinessException]]:
        """Breach what is overdue in the order's state at `now` (nothing before the
        partition's first event) and note the order for the next `sync`."""
        if now is None:
            self.touch(partition, key)
            return [], []
        records, raised, pending = breach_due_and_pending(state, self.policy, self.kind, now)
        self.touch(partition, key, pending)
        return records, raised

    def may_be_overdue(self, partition: int, key: bytes, now: int | None) -> bool:
        """Whether an order can have a deadline overdue before an event is applied to it
        (`tables.sla.apply_under_sla` looks only then). Only on the wall clock: the timer runs
        every few seconds, so an event can arrive between a due time and the next check. With
        the event clock, every deadline passed by the stream time was breached by the check run
        when it passed (or right after the change that created it). On the wall clock too
        nothing can be while no indexed deadline of the partition has passed and the order is
        indexed as it is (not changed since the last `sync`)."""
        if self.kind != "wall" or now is None:
            return False
        return now > self.horizon.get(partition, 0) or key in self.touched.get(partition, ())

    def touch(self, partition: int, key: bytes, deadlines: dict[str, int] | None = None) -> None:
        """The order's state changed: its index entries are rewritten at the next `sync`
        (from `deadlines` if given: the pending deadlines of the state as it is now)."""
        self.touched.setdefault(partition, {})[key] = deadlines
        if deadlines is None:
            self.touched_low[partition] = -_INF
        elif deadlines:
            earliest = min(deadlines.values())
            if earliest < self.touched_low.get(partition, _INF):
                self.touched_low[partition] = earliest

    def may_be_due(self, partition: int, now: int) -> bool:
        """Whether a deadline of the partition can have passed at `now`: most event-clock
        checks (one per advance of the stream time, i.e. nearly every event of a backlog)
        end here, without syncing the index or scanning it."""
        return now > min(self.horizon.get(partition, -_INF), self.touched_low.get(partition, _INF))

    def sync(self, partition: int | None = None) -> None:
        """Reschedule the touched orders (of one partition, or all) from their states."""
        for p in [partition] if partition is not None else list(self.touched):
            touched = self.touched.pop(p, None)
            self.touched_low.pop(p, None)
            index = self.ready.get(p)
            if not touched or index is None:
                continue
            horizon = self.horizon.get(p, float("inf"))
            with index.deferred():  # one write for all of them (each order once)
                for key, deadlines in touched.items():
                    order_id = key.decode()
                    state = self.store.get(p, key)
                    if state is None:
                        self._forget(index, order_id)
                        continue
                    if deadlines is None:
                        deadlines = pending_deadlines(state, self.policy, self.kind)
                    rescheduled = index.schedule(order_id, deadlines)
                    if rescheduled and deadlines:
                        horizon = min(horizon, min(deadlines.values()))
                    self._list(index, state, deadlines, rescheduled)
            self.horizon[p] = horizon

    def _list(self, index: DueIndex, state: OrderState, deadlines: dict[str, int], rescheduled: bool = True) -> None:
        """The order's open breaches and, when its deadlines moved, the risk levels of its open
        milestones (a milestone's clock starts with the change that gives it a due time, so
        unchanged deadlines are unchanged risk entries: most changes of an order skip this)."""
        index.set_open_breaches(state.order_id, state.open_breaches, state.channel, state.region)
        if rescheduled:
            milestones = open_milestones(state, self.policy, self.kind, deadlines) if deadlines else {}
            index.set_risks(state.order_id, milestones, self.thresholds, state.channel, state.region)

    @staticmethod
    def _forget(index: DueIndex, order_id: str) -> None:
        index.unschedule(order_id)
        index.set_open_breaches(order_id, [])
        index.set_risks(order_id, {}, DEFAULT_THRESHOLDS)

    # ------------------------------------------------------------------ checks

    def check(self, partition: int, send: Send, now: int | None) -> bool:
        """Breach what the partition's index says is due at `now` (each state re-checked);
        True when a state changed (records were sent). A scan returns at most
        `DEFAULT_LIMIT` deadlines; the event clock scans again until all are done (its next
        check may be far away), the wall clock leaves the rest to the next tick."""
        index = self.ready.get(partition)
        if index is None or now is None:
            return False
        METRICS.sla_checks.inc()
        if not self.may_be_due(partition, now):
            return False
        changed = False
        while True:
            self.sync(partition)
            due = index.due(now)
            METRICS.sla_index_reads.inc(index.last_scan_reads)
            for order_id in dict.fromkeys(order_id for order_id, _, _ in due):
                key = order_id.encode()
                state = self.store.get(partition, key)
                if state is not None and self.on_due(send, partition, key, state, now):
                    changed = True
                self.touch(partition, key)  # reschedules: drops the entries just found
            self.sync(partition)
            if len(due) < DEFAULT_LIMIT or self.kind == "wall":
                next_due = index.next_due()
                self.horizon[partition] = float("inf") if next_due is None else next_due
                return changed

    def tick(self, send: Send) -> None:
        """The wall-clock timer: check every ready partition (on the runtime thread, between
        batches; the records join the open transaction), then bring the risk counts to now."""
        for partition in sorted(self.ready):
            self.check(partition, send, self.clock.now(partition))
        self.refresh_counts()

    # ------------------------------------------------------------------ open breaches

    def open_breaches(
        self,
        milestone: str | None = None,
        channel: str | None = None,
        region: str | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], bool]:
        """This worker's open breaches (active partitions), by due time, filtered; and
        whether more matched than `limit`. Reads the listed breaches, not the orders. Called
        from the HTTP thread: reads the indexes as the last batch left them."""
        merged = merge_breach_listings(index.open_breaches() for index in list(self.ready.values()))
        found: list[dict[str, Any]] = []
        for breach in merged:
            if (
                (milestone is not None and breach["milestone"] != milestone)
                or (channel is not None and breach["channel"] != channel)
                or (region is not None and breach["region"] != region)
            ):
                continue
            if len(found) == limit:
                return found, True
            found.append(breach)
        return found, False

    def at_risk(
        self,
        level: str,
        milestone: str | None = None,
        channel: str | None = None,
        region: str | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], bool]:
        """This worker's open milestones at `level` or above (active partitions), most urgent
        first (due time, milestone, order id), each with its level and consumed share at its
        partition's clock; and whether more matched than `limit`. Reads what it lists."""
        found: list[dict[str, Any]] = []
        for partition, index in list(self.ready.items()):
            now = self.clock.now(partition)
            if now is None:
                continue
            for row in index.at_risk(level, now):
                if (
                    (milestone is not None and row["milestone"] != milestone)
                    or (channel is not None and row["channel"] != channel)
                    or (region is not None and row["region"] != region)
                ):
                    continue
                row["level"] = level_at(row["started_at"], row["due_at"], now, self.thresholds)
                row["consumed_pct"] = consumed_bp(row["started_at"], row["due_at"], now) / 100
                found.append(row)
        found.sort(key=risk_order)
        return found[:limit], len(found) > limit

    def counts(self) -> dict[str, Any]:
        """`{"open_breaches": {milestone: n}, "at_risk": {milestone: {level: n}}}` of the active
        partitions (for /stats: counts without listing every row)."""
        breaches: dict[str, int] = {}
        for index in list(self.ready.values()):
            for milestone, n in index.breach_counts().items():
                breaches[milestone] = breaches.get(milestone, 0) + n
        risk: dict[str, dict[str, int]] = {}
        for (milestone, level), n in self.risk_counts().items():
            risk.setdefault(milestone, {})[level] = n
        return {"open_breaches": breaches, "at_risk": risk}

    def risk_counts(self) -> dict[tuple[str, str], int]:
        """(milestone, level) -> open milestones at exactly that level (above LOW) on the
        active partitions: the `o2c_sla_at_risk` gauge and /stats, from any thread. As of the
        last `refresh_counts` (each commit, and each wall-clock tick)."""
        total: dict[tuple[str, str], int] = {}
        for index in list(self.ready.values()):
            for key, n in index.risk_snapshot.items():
                total[key] = total.get(key, 0) + n
        return total

    def refresh_counts(self) -> None:
        """On the runtime thread: bring each ready partition's risk counts to its clock's now
        (reads only the risk entries reached since the last refresh)."""
        for partition, index in list(self.ready.items()):
            now = self.clock.now(partition)
            if now is not None:
                index.refresh_risk_counts(now)

    # ------------------------------------------------------------------ lifecycle

    def open(self, partitions: set[int]) -> None:
        """The partitions were assigned and their stores restored: open (or rebuild) their
        indexes; partitions holding many states are rebuilt by helper processes together."""
        plans = {partition: self._plan(partition) for partition in sorted(partitions)}
        rebuilt = self._rebuild_in_helpers([p for p, (how, _) in plans.items() if how == "rebuild"])
        for partition, (how, replayed) in plans.items():
            self._open(partition, "rebuilt" if partition in rebuilt else how, replayed)

    def close(self, partitions: set[int]) -> None:
        """Revoked: an index that ran ahead of the committed states is not marked, so it is
        rebuilt when the partition comes back."""
        for partition in sorted(partitions):
            self._close(partition)

    def _plan(self, partition: int) -> tuple[str, set[bytes] | None]:
        """How to open the partition's index: "trust" it as left on disk (it covers the
        persisted states), "reindex" the orders a restore (or a standby) replayed since it
        covered them (returned), or "rebuild" it from every stored state."""
        persisted = self.store.position(partition)
        replayed = self.store.take_replayed(partition)
        index = self.indexes.open(partition)
        covered = index.covered_offset()
        if persisted is not None and covered == persisted and index.keeps_risks:
            return "trust", None
        if index.keeps_risks and replayed is not None and replayed[1] is not None and replayed[0] == covered is not None:
            return "reindex", replayed[1]
        return "rebuild", None

    def _rebuild_in_helpers(self, partitions: list[int]) -> set[int]:
        """Rebuild the indexes of those `partitions` that hold many states in helper processes
        (streams/processors/sla_rebuild.py); the partitions rebuilt."""
        estimates = {p: self.store.open(p).property_int_value("rocksdb.estimate-num-keys") or 0 for p in partitions}
        groups = spread(estimates, self.helpers, sla_rebuild.HELPER_STATES)
        if not groups:
            return set()
        started = time.monotonic()
        for group in groups:
            for partition in group:
                self.indexes.reset(partition)
                self.indexes.close(partition)  # the helper writes it
        orders = rebuild_in_helpers(groups, self.store.directory, self.indexes.root, self.settings)
        log.info("SLA due indexes of partitions %s rebuilt by %d helper processes: %d orders in %.2f s",
                 sorted(orders), len(groups), sum(orders.values()), time.monotonic() - started)
        return set(orders)

    def _open(self, partition: int, how: str, replayed: set[bytes] | None) -> None:
        """Open the index as `_plan` said ("rebuilt": by a helper, to be marked)."""
        persisted = self.store.position(partition)
        index = self.indexes.open(partition)
        if how != "trust":
            started = time.monotonic()
            if how == "reindex":
                assert replayed is not None
                orders = self._reindex(index, partition, replayed)
                log.info("SLA due index of partition %d caught up on the replayed tail: %d orders in %.2f s",
                         partition, orders, time.monotonic() - started)
            elif how == "rebuild":
                index = self.indexes.reset(partition)
                orders = rebuild(index, stored_states(self.store.open(partition)), self.policy, self.kind, self.thresholds)
                log.info("SLA due index of partition %d rebuilt: %d orders in %.2f s",
                         partition, orders, time.monotonic() - started)
            index.mark_risks_kept()
            if persisted is not None:
                index.set_covered_offset(persisted)  # it reflects exactly the persisted states
        next_due = index.next_due()
        self.horizon[partition] = float("inf") if next_due is None else next_due
        if self.stream_times is not None:
            self.clock.forget(partition)
            self.clock.seed(partition, self.stream_times.get(partition, _STREAM_TIME_KEY))
        now = self.clock.now(partition)
        if now is not None:
            index.refresh_risk_counts(now)
        self.ready[partition] = index

    def _reindex(self, index: DueIndex, partition: int, keys: set[bytes]) -> int:
        """Reschedule the given orders from their persisted states (gone: unscheduled)."""
        for key in keys:
            raw = self.store.dbs[partition].get(key)
            if raw is None:
                self._forget(index, key.decode())
                continue
            state = OrderState.from_bytes(raw)
            deadlines = pending_deadlines(state, self.policy, self.kind)
            index.schedule(state.order_id, deadlines)
            self._list(index, state, deadlines)
        return len(keys)

    def _close(self, partition: int) -> None:
        self.ready.pop(partition, None)
        self.touched.pop(partition, None)
        self.touched_low.pop(partition, None)
        self.horizon.pop(partition, None)
        self.clock.forget(partition)
        self.indexes.close(partition)

    def mark_covered(self) -> None:
        """After a commit: mark each index whose partition has nothing uncommitted as
        covering the partition's persisted changelog position."""
        uncommitted = self.store.uncommitted_partitions()
        for partition, index in self.ready.items():
            if partition in uncommitted or self.touched.get(partition):
                continue
            persisted = self.store.position(partition)
            # Marked and unchanged since, while the states moved on: the changes did not move
            # any deadline (nothing written), so the mark moves with them.
            if persisted is not None and not (index.marked and index.covered_offset() == persisted):
                index.set_covered_offset(persisted)

    def close_all(self) -> None:
        self.ready.clear()
        self.indexes.close_all()

