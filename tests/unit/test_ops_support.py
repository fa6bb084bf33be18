"""Shared helpers of the Operations API tests: a stand-in for the order agent that drives the
pure core the way the shell is meant to, and a strategy of random order stories.

(Named test_ops_* so it lives with the tests it serves; it defines no tests itself.)

`Shell` applies inputs like streams/processors/orders.py does (`apply_under_sla`, then
`emission_of`, then `status_event` when told), and after every stored change calls what
docs/operations-api.md asks of the shell: `timeline.record`, `kpis.kpi_changes`,
`cases.cases_opened` and `cases.cases_auto_resolved`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tables import cases as cs
from tables import kpis, timeline
from tables.allocation import AllocationResult
from tables.emission import Emission, breached, emission_of
from tables.order import apply_allocation, apply_event
from tables.order_state import OrderState
from tables.sla import EVENT, SlaPolicy, apply_under_sla, breach_due
from tables.views import status_event
from tests.unit.test_order_support import ORDER, T0, FakeInventory, Harness

POLICY = SlaPolicy()
HOUR = 3_600_000
DAY = 24 * HOUR
PROCESSING_DELAY = 250  # ms between an event's business time and its processing, in these tests


def copy_state(state: OrderState) -> OrderState:
    """The `before` the transition functions need (the model mutates the state in place)."""
    return OrderState.from_bytes(state.to_bytes())


@dataclass
class Transition:
    before: OrderState | None
    after: OrderState
    cause: Any
    processed_at: int
    delta: kpis.KpiDelta


@dataclass
class Shell:
    """One order under the event clock, plus its timeline, KPI totals and cases."""

    caps: dict[str, int] = field(default_factory=dict)
    max_entries: int = timeline.MAX_TIMELINE_ENTRIES
    read_raised_from_state: bool = False

    def __post_init__(self) -> None:
        self.h = Harness(ORDER, FakeInventory(caps=self.caps))
        self.ev = self.h.ev
        self.now = T0  # the partition's stream time
        self.timeline = timeline.EMPTY
        self.totals = kpis.KpiTotals()
        self.cases: dict[str, cs.Case] = {}
        self.transitions: list[Transition] = []

    @property
    def state(self) -> OrderState:
        return self.h.state

    # -- inputs ---------------------------------------------------------------------
    def event(self, ev: dict[str, Any]) -> Emission:
        state = self.h.state
        fresh = not (state.placed_at or state.buffer or state.exceptions_total or state.seq)
        before = None if fresh else copy_state(state)
        self.now = max(self.now, ev["occurred_at"])
        outcome, step = apply_under_sla(
            state, lambda: apply_event(state, ev, self.now), ev["occurred_at"], POLICY, EVENT, self.now
        )
        em = emission_of(state, outcome, step, ev)
        self._emit(before, em, ev)
        return em

    def result(self, res: AllocationResult) -> Emission:
        state = self.h.state
        before = copy_state(state)
        outcome, step = apply_under_sla(
            state, lambda: apply_allocation(state, res), res.occurred_at, POLICY, EVENT, self.now
        )
        em = emission_of(state, outcome, step, res)
        self._emit(before, em, res)
        return em

    def check(self, now: int) -> Emission:
        """The SLA check of the partition at stream time `now`."""
        self.now = max(self.now, now)
        state = self.h.state
        before = copy_state(state)
        records, raised = breach_due(state, POLICY, EVENT, self.now)
        em = breached(state, records, raised)
        self._emit(before, em, em.status_cause)
        return em

    def settle(self) -> None:
        self.h.inv.process_all()
        while self.h.inv.outbox:
            self.result(self.h.inv.deliver_one())

    def advance(self, ms: int) -> None:
        """Let business time pass before the next event."""
        self.ev.t0 += ms

    # -- what the shell does after each input ------------------------------------------
    def _emit(self, before: OrderState | None, em: Emission, cause: Any) -> None:
        state = self.h.state
        self.h.inv.send(em.allocation)
        self.h.raised.extend(em.exceptions)
        processed = self.now + PROCESSING_DELAY
        if em.status_cause is not None:
            self.h.published.append(status_event(state, em.status_cause, processed))
        if not em.store:
            return
        tcause = em.status_cause if em.status_cause is not None else cause
        self.timeline = timeline.record(self.timeline, before, state, tcause, processed, self.max_entries)
        delta = kpis.kpi_changes(before, state, processed, cause)
        self.totals.apply(delta)
        self.transitions.append(Transition(before, copy_state(state), cause, processed, delta))
        raised = None if self.read_raised_from_state else em.exceptions
        opened = cs.cases_opened(before, state, raised)
        # the order agent's way (no `before`): the same cases; the same refs where the state
        # difference names one (the cause also names it when the same problem repeats)
        seen = cs.cases_raised(state, em.exceptions, em.breaches, cause if isinstance(cause, dict) else None)
        assert [c.case_id for c in seen] == [c.case_id for c in opened]
        assert all(a.ref == b.ref for a, b in zip(seen, opened) if b.ref is not None)
        for case in opened:
            self.cases.setdefault(case.case_id, case)
        at = self._business_time(cause)
        open_cases = [c for c in self.cases.values() if not c.is_resolved and c.kind == cs.Kind.ORDER]
        for case in cs.cases_auto_resolved(open_cases, state, at):
            self.cases[case.case_id] = case

    def _business_time(self, cause: Any) -> int:
        if isinstance(cause, AllocationResult):
            return cause.occurred_at
        if isinstance(cause, dict) and cause.get("occurred_at") is not None:
            return cause["occurred_at"]
        return self.now


# -- random order stories -----------------------------------------------------------------
LINES = ("10", "20", "30")


def story_ops() -> st.SearchStrategy[list[tuple]]:
    """Operations after OrderPlaced; `run_story` gives them meaning (quantities are taken
    modulo what makes sense, so most operations are legal, some raise exceptions)."""
    line = st.sampled_from(LINES)
    qty = st.integers(0, 6)
    op = st.one_of(
        st.just(("accept",)),
        st.just(("settle",)),
        st.tuples(st.just("restock"), line, st.integers(1, 6)),
        st.tuples(st.just("cancel"), line, qty),
        st.tuples(st.just("change"), line, st.integers(0, 9)),
        st.tuples(st.just("dispatch"), line, qty),
        st.just(("deliver",)),
        st.tuples(st.just("invoice"), line, qty),
        st.tuples(st.just("pay"), st.integers(0, 3000), st.sampled_from(["none", "last", "next"])),
        st.tuples(st.just("refund"), st.integers(1, 500)),
        st.tuples(st.just("hold"), st.sampled_from(("CREDIT", "FRAUD"))),
        st.tuples(st.just("release"), st.sampled_from(("CREDIT", "FRAUD"))),
        st.tuples(st.just("advance"), st.sampled_from((HOUR, 3 * HOUR, DAY, 3 * DAY, 40 * DAY))),
        st.just(("check",)),
    )
    accepted_first = st.sampled_from([True, True, True, False])  # most stories get going
    return st.tuples(accepted_first, st.lists(op, max_size=25)).map(
        lambda t: [("accept",), ("settle",), *t[1]] if t[0] else t[1]
    )


def new_shell(caps: dict[str, int], promised: bool, **kw: Any) -> Shell:
    shell = Shell(caps=caps, **kw)
    shell.event(
        shell.ev.placed(
            [("10", "SKU-A", 4, 100, "W1"), ("20", "SKU-B", 3, 250, "W2"), ("30", "SKU-C", 5, 40)],
            promised_ship_at=T0 + 2 * DAY if promised else None,
        )
    )
    return shell


def run_story(shell: Shell, ops: list[tuple]) -> None:
    ev = shell.ev
    shipments = 0
    invoices = 0
    payments = 0
    for op in ops:
        kind = op[0]
        if kind == "accept":
            shell.event(ev.accepted())
        elif kind == "settle":
            shell.settle()
        elif kind == "restock":
            shell.h.inv.restock(ORDER, op[1], op[2], shell.now)
            shell.settle()
        elif kind == "cancel":
            shell.event(ev.line_cancelled(op[1], op[2]))
        elif kind == "change":
            shell.event(ev.line_changed(op[1], op[2]))
        elif kind == "dispatch":
            shipments += 1
            shell.event(ev.dispatched(f"S{shipments}", {op[1]: op[2]}, wh="W1"))
        elif kind == "deliver":
            shell.event(ev.delivered(f"S{max(shipments, 1)}"))
        elif kind == "invoice":
            invoices += 1
            shell.event(ev.invoice(f"I{invoices}", {op[1]: (op[2], op[2] * 100)}))
        elif kind == "pay":
            payments += 1
            named = {"none": None, "last": f"I{max(invoices, 1)}", "next": f"I{invoices + 1}"}[op[2]]
            shell.event(ev.payment(f"P{payments}", op[1], named))
        elif kind == "refund":
            shell.event(ev.refund(f"P{max(payments, 1)}", op[1]))
        elif kind == "hold":
            shell.event(ev.hold(op[1]))
        elif kind == "release":
            shell.event(ev.release(op[1]))
        elif kind == "advance":
            shell.advance(op[1])
        elif kind == "check":
            shell.check(ev.t0 + ev.n * 60_000)


def finish_lines(shell: Shell, ship: list[bool]) -> None:
    """Take every line out of backorder: ship (or cancel) all its open unshipped quantity."""
    shell.settle()
    for i, line_id in enumerate(LINES):
        ln = shell.state.lines[line_id]
        open_ = ln.ordered - ln.cancelled - ln.shipped
        if open_ <= 0:
            continue
        if ship[i % len(ship)] if ship else True:
            shell.event(shell.ev.dispatched(f"F{line_id}", {line_id: open_}))
        else:
            shell.event(shell.ev.line_cancelled(line_id, None))
    shell.settle()


CAPS = st.fixed_dictionaries({lid: st.integers(0, 6) for lid in LINES})
