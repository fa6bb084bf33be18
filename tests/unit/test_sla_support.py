"""SLA test pipeline: the per-event recipe of docs/sla.md ("Wiring") without Faust.

The real order model, the real due index (RocksDB in a temp dir) and the real clock; one
table partition, orders kept in a dict, every step "committed" at once. (Named test_sla_*
so it lives with the tests it serves; it defines no tests itself.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.processors.due_index import DueIndex, StreamClock
from tables.allocation import AllocationResult
from tables.order import apply_allocation, apply_event
from tables.order_state import OrderState
from tables.sla import (
    ClockKind,
    SlaPolicy,
    apply_under_sla,
    breach_due,
    pending_deadlines,
    timer_cause,
)
from tables.views import status_event
from tests.unit.test_order_support import T0, Events, FakeInventory

PARTITION = 0
TICKER = "SO-TICK"
"""An order whose events only advance the event clock (its own SLAs are ignored)."""


class SlaPipeline:
    def __init__(
        self,
        path: Path,
        policy: SlaPolicy | None = None,
        clock: ClockKind = "event",
        inventory: FakeInventory | None = None,
        wall: list[int] | None = None,
    ) -> None:
        self.policy = policy or SlaPolicy()
        self.kind: ClockKind = clock
        self.wall = wall if wall is not None else [T0]
        self.clock = StreamClock(clock, wall=lambda: self.wall[0] / 1000)
        self.index = DueIndex(path)
        self.inv = inventory if inventory is not None else FakeInventory()
        self.states: dict[str, OrderState] = {}
        self.breaches: list[dict[str, Any]] = []  # SlaBreached records, in publication order
        self.statuses: list[dict[str, Any]] = []  # OrderStatusChanged records
        self.raised: list[Any] = []
        self.ticks = Events(TICKER)
        self.ticked = False

    # -- inputs -------------------------------------------------------------------------
    def event(self, ev: dict[str, Any]) -> None:
        """An input event: advance the stream time (event clock) and check the partition
        BEFORE applying it, so a milestone reached late still breaches first."""
        if self.clock.observe(PARTITION, ev["occurred_at"]) or self.kind == "wall":
            self.check()
        now = self.now()
        state = self.states.setdefault(ev["order_id"], OrderState(ev["order_id"]))
        wall_ms = self.wall[0] if self.kind == "wall" else None
        self._step(state, now, lambda: apply_event(state, ev, wall_ms), ev, ev["occurred_at"])

    def result(self, res: AllocationResult) -> None:
        """An allocation answer: does not move the event clock (its time comes from another
        partition's events), but breaches and closes like any change."""
        state = self.states[res.order_id]
        self._step(state, self.now(), lambda: apply_allocation(state, res), res, res.occurred_at)

    def tick(self, at: int) -> None:
        """Stream time reaches `at` through an unrelated order's event."""
        if not self.ticked:
            self.ticked = True
            self.event(self.ticks.make("OrderPlaced", at, customer_id="C", channel="EDI",
                                       region="EU", currency="EUR", payment_terms_days=30,
                                       promised_ship_at=None, lines=[]))
        else:
            self.event(self.ticks.make("OrderHoldReleased", at, hold_type="MANUAL"))

    def settle(self) -> None:
        self.inv.process_all()
        while self.inv.outbox:
            self.result(self.inv.deliver_one())
            self.inv.process_all()

    # -- the recipe ---------------------------------------------------------------------
    def now(self) -> int:
        now = self.clock.now(PARTITION)
        return now if now is not None else -(1 << 62)

    def _step(self, state: OrderState, now: int, apply: Any, cause: Any, at: int) -> None:
        out, step = apply_under_sla(state, apply, at, self.policy, self.kind, now)
        self.inv.send(out.allocation)
        self.raised.extend(out.exceptions)
        self.breaches.extend(step.breaches)
        self.raised.extend(step.raised_before + step.raised_after)
        if state.placed_at is not None and (out.publish or step.breaches or step.closed):
            self.statuses.append(status_event(state, cause, now))
        self._persisted(state)

    def check(self) -> None:
        """The partition check: only what the index says is due, verified on the state."""
        now = self.now()
        for order_id, _milestone, _due in self.index.due(now):
            state = self.states[order_id]
            records, raised = breach_due(state, self.policy, self.kind, now)
            self.breaches.extend(records)
            self.raised.extend(raised)
            if records and state.placed_at is not None:
                self.statuses.append(status_event(state, timer_cause(state, records), now))
            self._persisted(state)

    def _persisted(self, state: OrderState) -> None:
        """After the commit that covers `state`: reschedule it."""
        self.index.schedule(state.order_id, pending_deadlines(state, self.policy, self.kind))

    # -- views --------------------------------------------------------------------------
    def breaches_of(self, order_id: str) -> list[dict[str, Any]]:
        return [b for b in self.breaches if b["order_id"] == order_id]

    def statuses_of(self, order_id: str) -> list[dict[str, Any]]:
        return [s for s in self.statuses if s["order_id"] == order_id]

    def close(self) -> None:
        self.index.close()
