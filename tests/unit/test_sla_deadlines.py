"""SPEC §6 milestone by milestone, with the event clock: exact due and detection times.

For every milestone: due -> one breach; met on time -> none; met late -> a breach, then
closed as late in the status event. Driven through tests/test_sla_support.SlaPipeline: the
real order model, due index (RocksDB) and clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tables.exceptions import Code
from tables.order_state import OrderState
from tables.sla import (
    DAY_MS,
    HOUR_MS,
    Milestone,
    SlaPolicy,
    breach_due,
    close_met_breaches,
    merge_breach_listings,
    pending_deadlines,
    record_breach,
)
from tests.unit.test_order_support import ORDER, T0, Events, FakeInventory
from tests.unit.test_sla_support import SlaPipeline

LINES = [("L1", "SKU-A", 10, 500), ("L2", "SKU-B", 4, 250)]


@pytest.fixture()
def pipe(tmp_path: Path) -> Iterator[SlaPipeline]:
    p = SlaPipeline(tmp_path / "due")
    yield p
    p.close()


def at(ev: dict[str, Any], t: int) -> dict[str, Any]:
    ev["occurred_at"] = t
    return ev


def of(pipe: SlaPipeline, milestone: str) -> list[dict[str, Any]]:
    return [b for b in pipe.breaches_of(ORDER) if b["milestone"] == milestone]


def expect_one_breach(pipe: SlaPipeline, milestone: str, due: int, detected: int) -> None:
    assert of(pipe, milestone) == [{
        "order_id": ORDER, "milestone": milestone, "due_at": due, "detected_at": detected,
        "clock": "EVENT", "channel": "EDI", "region": "EU",
    }]


def last_status(pipe: SlaPipeline) -> dict[str, Any]:
    return pipe.statuses_of(ORDER)[-1]


def expect_closed_late(pipe: SlaPipeline, milestone: str, due: int, detected: int, met: int) -> None:
    status = last_status(pipe)
    assert milestone not in {b["milestone"] for b in status["open_breaches"]}
    assert {"milestone": milestone, "due_at": due, "detected_at": detected, "met_at": met,
            "late": True} in status["closed_breaches"]


def placed(pipe: SlaPipeline, ev: Events, t: int = T0, **kw: Any) -> None:
    pipe.event(at(ev.placed(LINES, **kw), t))


def accepted(pipe: SlaPipeline, ev: Events, t: int) -> None:
    pipe.event(at(ev.accepted(), t))
    pipe.settle()


def shipped(pipe: SlaPipeline, ev: Events, t: int, sid: str = "S1") -> None:
    pipe.event(at(ev.dispatched(sid, {"L1": 10, "L2": 4}), t))
    pipe.settle()


# -- ACCEPTANCE: 4 h after placed --------------------------------------------------------------
def test_acceptance_due_breaches_once_without_further_events(pipe: SlaPipeline) -> None:
    placed(pipe, Events())
    pipe.tick(T0 + 4 * HOUR_MS)  # exactly due: not passed yet
    assert of(pipe, Milestone.ACCEPTANCE) == []
    pipe.tick(T0 + 4 * HOUR_MS + 1)
    pipe.tick(T0 + 9 * HOUR_MS)
    expect_one_breach(pipe, Milestone.ACCEPTANCE, T0 + 4 * HOUR_MS, T0 + 4 * HOUR_MS + 1)
    status = last_status(pipe)
    assert status["cause_event_type"] == "SlaBreached"
    assert status["cause_event_id"] == f"sla:{ORDER}:ACCEPTANCE"
    assert status["open_breaches"] == [
        {"milestone": "ACCEPTANCE", "due_at": T0 + 4 * HOUR_MS, "detected_at": T0 + 4 * HOUR_MS + 1}
    ]


def test_acceptance_on_time_never_breaches(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + 4 * HOUR_MS)  # at the due time is on time
    pipe.tick(T0 + 30 * DAY_MS)
    assert of(pipe, Milestone.ACCEPTANCE) == []
    assert last_status(pipe)["closed_breaches"] == []


def test_acceptance_late_breaches_then_closes_late(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    pipe.event(at(ev.accepted(), T0 + 5 * HOUR_MS))  # the late event itself moves the clock
    expect_one_breach(pipe, Milestone.ACCEPTANCE, T0 + 4 * HOUR_MS, T0 + 5 * HOUR_MS)
    expect_closed_late(pipe, Milestone.ACCEPTANCE, T0 + 4 * HOUR_MS, T0 + 5 * HOUR_MS,
                       T0 + 5 * HOUR_MS)
    assert last_status(pipe)["cause_event_type"] == "OrderAccepted"


# -- ALLOCATION: 2 h after accepted; backorders count as not allocated ------------------------
def test_allocation_backordered_breaches_then_restock_closes_it_late(tmp_path: Path) -> None:
    pipe = SlaPipeline(tmp_path / "due", inventory=FakeInventory(caps={"L1": 6}))
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    assert pipe.states[ORDER].lines["L1"].backordered == 4
    pipe.tick(T0 + 3 * HOUR_MS + 1)
    expect_one_breach(pipe, Milestone.ALLOCATION, T0 + 3 * HOUR_MS, T0 + 3 * HOUR_MS + 1)
    pipe.tick(T0 + 6 * HOUR_MS)
    pipe.inv.restock(ORDER, "L1", 4, T0 + 6 * HOUR_MS)
    pipe.settle()
    assert pipe.states[ORDER].allocated_at == T0 + 6 * HOUR_MS
    expect_closed_late(pipe, Milestone.ALLOCATION, T0 + 3 * HOUR_MS, T0 + 3 * HOUR_MS + 1,
                       T0 + 6 * HOUR_MS)
    assert last_status(pipe)["cause_event_type"] == "AllocationResult"
    pipe.close()


def test_allocation_on_time_never_breaches(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    assert pipe.states[ORDER].allocated_at == T0 + HOUR_MS
    pipe.tick(T0 + 40 * HOUR_MS)
    assert of(pipe, Milestone.ALLOCATION) == []


def test_allocation_late_breaches_then_closes_late(tmp_path: Path) -> None:
    pipe = SlaPipeline(tmp_path / "due", inventory=FakeInventory(caps={"L2": 0}))
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    pipe.tick(T0 + 2 * HOUR_MS)
    pipe.inv.restock(ORDER, "L2", 4, T0 + 3 * HOUR_MS + 5)
    pipe.settle()  # the answer does not move the event clock, so it is met late unbreached...
    assert of(pipe, Milestone.ALLOCATION) == []
    assert pipe.states[ORDER].allocated_at == T0 + 3 * HOUR_MS + 5
    # ...and the breach is never published afterwards: the milestone was reached.
    pipe.tick(T0 + 10 * HOUR_MS)
    assert of(pipe, Milestone.ALLOCATION) == []
    pipe.close()
    # When the stream time passed the due time first, it breaches, then closes late.
    pipe = SlaPipeline(tmp_path / "due2", inventory=FakeInventory(caps={"L2": 0}))
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    pipe.tick(T0 + 3 * HOUR_MS + 10)
    pipe.inv.restock(ORDER, "L2", 4, T0 + 3 * HOUR_MS + 20)
    pipe.settle()
    expect_one_breach(pipe, Milestone.ALLOCATION, T0 + 3 * HOUR_MS, T0 + 3 * HOUR_MS + 10)
    expect_closed_late(pipe, Milestone.ALLOCATION, T0 + 3 * HOUR_MS, T0 + 3 * HOUR_MS + 10,
                       T0 + 3 * HOUR_MS + 20)
    pipe.close()


# -- SHIPMENT: by promised_ship_at, else 48 h after accepted -----------------------------------
def test_shipment_due_48h_after_acceptance(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    pipe.tick(T0 + 49 * HOUR_MS + 7)
    expect_one_breach(pipe, Milestone.SHIPMENT, T0 + 49 * HOUR_MS, T0 + 49 * HOUR_MS + 7)


def test_shipment_due_by_promised_ship_at_even_before_acceptance(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev, promised_ship_at=T0 + 3 * HOUR_MS)
    assert pending_deadlines(pipe.states[ORDER], pipe.policy, "event") == {
        Milestone.ACCEPTANCE: T0 + 4 * HOUR_MS, Milestone.SHIPMENT: T0 + 3 * HOUR_MS,
    }
    pipe.tick(T0 + 3 * HOUR_MS + 1)
    expect_one_breach(pipe, Milestone.SHIPMENT, T0 + 3 * HOUR_MS, T0 + 3 * HOUR_MS + 1)


def test_shipment_on_time_never_breaches(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev, promised_ship_at=T0 + 10 * HOUR_MS)
    accepted(pipe, ev, T0 + HOUR_MS)
    shipped(pipe, ev, T0 + 10 * HOUR_MS)
    pipe.tick(T0 + 4 * DAY_MS)
    assert of(pipe, Milestone.SHIPMENT) == []


def test_shipment_late_breaches_then_closes_late(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    pipe.tick(T0 + 50 * HOUR_MS)
    pipe.event(at(ev.dispatched("S1", {"L1": 10}), T0 + 51 * HOUR_MS))  # partial: still open
    assert pipe.states[ORDER].open_breaches[0]["milestone"] == Milestone.SHIPMENT
    shipped_rest = at(ev.dispatched("S2", {"L2": 4}), T0 + 52 * HOUR_MS)
    pipe.event(shipped_rest)
    expect_one_breach(pipe, Milestone.SHIPMENT, T0 + 49 * HOUR_MS, T0 + 50 * HOUR_MS)
    expect_closed_late(pipe, Milestone.SHIPMENT, T0 + 49 * HOUR_MS, T0 + 50 * HOUR_MS,
                       T0 + 52 * HOUR_MS)
    assert last_status(pipe)["cause_event_id"] == shipped_rest["event_id"]


# -- DELIVERY: 5 days after dispatch (of each shipment) ----------------------------------------
def test_delivery_due_five_days_after_the_oldest_undelivered_dispatch(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    pipe.event(at(ev.dispatched("S1", {"L1": 10}), T0 + 2 * HOUR_MS))
    pipe.event(at(ev.dispatched("S2", {"L2": 4}), T0 + DAY_MS))
    assert pending_deadlines(pipe.states[ORDER], pipe.policy, "event")[Milestone.DELIVERY] == (
        T0 + 2 * HOUR_MS + 5 * DAY_MS
    )
    pipe.event(at(ev.delivered("S1"), T0 + 3 * DAY_MS))  # on time; S2 now sets the due time
    assert pending_deadlines(pipe.states[ORDER], pipe.policy, "event")[Milestone.DELIVERY] == (
        T0 + 6 * DAY_MS
    )
    pipe.tick(T0 + 6 * DAY_MS + 1)
    expect_one_breach(pipe, Milestone.DELIVERY, T0 + 6 * DAY_MS, T0 + 6 * DAY_MS + 1)


def test_delivery_on_time_never_breaches(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    shipped(pipe, ev, T0 + 2 * HOUR_MS)
    pipe.event(at(ev.delivered("S1"), T0 + 2 * HOUR_MS + 5 * DAY_MS))
    pipe.tick(T0 + 60 * DAY_MS)
    assert of(pipe, Milestone.DELIVERY) == []


def test_delivery_late_breaches_then_closes_late(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    shipped(pipe, ev, T0 + 2 * HOUR_MS)
    pipe.event(at(ev.delivered("S1"), T0 + 7 * DAY_MS))
    due = T0 + 2 * HOUR_MS + 5 * DAY_MS
    expect_one_breach(pipe, Milestone.DELIVERY, due, T0 + 7 * DAY_MS)
    expect_closed_late(pipe, Milestone.DELIVERY, due, T0 + 7 * DAY_MS, T0 + 7 * DAY_MS)


def test_delivery_still_watched_on_a_closed_order(pipe: SlaPipeline) -> None:
    """ECOM-style: invoiced and paid at dispatch, so CLOSED before the carrier delivers."""
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    shipped(pipe, ev, T0 + 2 * HOUR_MS)
    pipe.event(at(ev.invoice("I1", {"L1": (10, 5000), "L2": (4, 1000)}), T0 + 3 * HOUR_MS))
    pipe.event(at(ev.payment("P1", 6000, "I1"), T0 + 4 * HOUR_MS))
    assert pipe.states[ORDER].closed_at == T0 + 4 * HOUR_MS
    assert pending_deadlines(pipe.states[ORDER], pipe.policy, "event") == {
        Milestone.DELIVERY: T0 + 2 * HOUR_MS + 5 * DAY_MS
    }
    pipe.tick(T0 + 6 * DAY_MS)
    assert [b["milestone"] for b in pipe.breaches_of(ORDER)] == [Milestone.DELIVERY]


# -- INVOICE: 24 h after full shipment ---------------------------------------------------------
def test_invoice_due_a_day_after_full_shipment(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    pipe.event(at(ev.dispatched("S1", {"L1": 10}), T0 + 2 * HOUR_MS))
    assert Milestone.INVOICE not in pending_deadlines(pipe.states[ORDER], pipe.policy, "event")
    pipe.event(at(ev.dispatched("S2", {"L2": 4}), T0 + 5 * HOUR_MS))
    pipe.tick(T0 + 29 * HOUR_MS + 1)
    expect_one_breach(pipe, Milestone.INVOICE, T0 + 29 * HOUR_MS, T0 + 29 * HOUR_MS + 1)


def test_invoice_on_time_never_breaches(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    shipped(pipe, ev, T0 + 2 * HOUR_MS)
    pipe.event(at(ev.invoice("I1", {"L1": (10, 5000), "L2": (4, 1000)}), T0 + 26 * HOUR_MS))
    pipe.tick(T0 + 28 * HOUR_MS)
    assert of(pipe, Milestone.INVOICE) == []


def test_invoice_late_breaches_then_closes_late(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    shipped(pipe, ev, T0 + 2 * HOUR_MS)
    pipe.tick(T0 + 27 * HOUR_MS)
    pipe.event(at(ev.invoice("I1", {"L1": (10, 5000)}), T0 + 28 * HOUR_MS))  # partial
    assert [b["milestone"] for b in pipe.states[ORDER].open_breaches] == [Milestone.INVOICE]
    pipe.event(at(ev.invoice("I2", {"L2": (4, 1000)}), T0 + 30 * HOUR_MS))
    expect_one_breach(pipe, Milestone.INVOICE, T0 + 26 * HOUR_MS, T0 + 27 * HOUR_MS)
    expect_closed_late(pipe, Milestone.INVOICE, T0 + 26 * HOUR_MS, T0 + 27 * HOUR_MS,
                       T0 + 30 * HOUR_MS)


# -- PAYMENT: by the invoice's due date --------------------------------------------------------
def invoiced(pipe: SlaPipeline, ev: Events, due_at: int | None = None) -> None:
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    shipped(pipe, ev, T0 + 2 * HOUR_MS)
    pipe.event(at(ev.invoice("I1", {"L1": (10, 5000), "L2": (4, 1000)}, due_at=due_at),
                  T0 + 3 * HOUR_MS))


def test_payment_due_by_the_invoice_due_date(pipe: SlaPipeline) -> None:
    ev = Events()
    invoiced(pipe, ev)  # due date = posted + 30 payment-terms days
    due = T0 + 3 * HOUR_MS + 30 * DAY_MS
    assert pending_deadlines(pipe.states[ORDER], pipe.policy, "event")[Milestone.PAYMENT] == due
    pipe.event(at(ev.payment("P1", 2000, "I1"), T0 + 10 * DAY_MS))  # partial payment
    pipe.tick(due + 1)
    expect_one_breach(pipe, Milestone.PAYMENT, due, due + 1)


def test_payment_on_time_never_breaches(pipe: SlaPipeline) -> None:
    ev = Events()
    invoiced(pipe, ev, due_at=T0 + 14 * DAY_MS)
    pipe.event(at(ev.payment("P1", 6000), T0 + 14 * DAY_MS))  # cash without an invoice id
    pipe.tick(T0 + 90 * DAY_MS)
    assert of(pipe, Milestone.PAYMENT) == []
    assert pipe.states[ORDER].closed_at == T0 + 14 * DAY_MS


def test_payment_late_breaches_then_closes_late(pipe: SlaPipeline) -> None:
    ev = Events()
    invoiced(pipe, ev, due_at=T0 + 14 * DAY_MS)
    pipe.event(at(ev.payment("P1", 6000, "I1"), T0 + 20 * DAY_MS))
    expect_one_breach(pipe, Milestone.PAYMENT, T0 + 14 * DAY_MS, T0 + 20 * DAY_MS)
    expect_closed_late(pipe, Milestone.PAYMENT, T0 + 14 * DAY_MS, T0 + 20 * DAY_MS,
                       T0 + 20 * DAY_MS)


def test_payment_policy_grace_and_first_unpaid_invoice(tmp_path: Path) -> None:
    pipe = SlaPipeline(tmp_path / "due", policy=SlaPolicy.from_toml("[channel.EDI]\npayment = '2d'"))
    ev = Events()
    placed(pipe, ev)
    accepted(pipe, ev, T0 + HOUR_MS)
    shipped(pipe, ev, T0 + 2 * HOUR_MS)
    pipe.event(at(ev.invoice("I1", {"L1": (10, 5000)}, due_at=T0 + 10 * DAY_MS), T0 + 3 * HOUR_MS))
    pipe.event(at(ev.invoice("I2", {"L2": (4, 1000)}, due_at=T0 + 20 * DAY_MS), T0 + 4 * HOUR_MS))
    state = pipe.states[ORDER]
    assert pending_deadlines(state, pipe.policy, "event")[Milestone.PAYMENT] == T0 + 12 * DAY_MS
    pipe.event(at(ev.payment("P1", 5000, "I1"), T0 + 5 * DAY_MS))  # I1 settled
    assert pending_deadlines(state, pipe.policy, "event")[Milestone.PAYMENT] == T0 + 22 * DAY_MS
    pipe.event(at(ev.refund("P1", 100), T0 + 6 * DAY_MS))  # the oldest is owed again
    assert pending_deadlines(state, pipe.policy, "event")[Milestone.PAYMENT] == T0 + 12 * DAY_MS
    pipe.event(at(ev.payment("P2", 1100), T0 + 7 * DAY_MS))  # unapplied cash covers the rest
    assert Milestone.PAYMENT not in pending_deadlines(state, pipe.policy, "event")
    pipe.close()


# -- ORPHAN: 1 h after the first buffered event ------------------------------------------------
def test_orphan_due_breaches_once_and_raises_orphan_event(pipe: SlaPipeline) -> None:
    ev = Events()
    first = at(ev.dispatched("S1", {"L1": 1}), T0)
    pipe.event(first)
    pipe.event(at(ev.delivered("S1"), T0 + 30 * 60_000))
    pipe.tick(T0 + HOUR_MS + 1)
    pipe.tick(T0 + 5 * HOUR_MS)
    assert of(pipe, Milestone.ORPHAN) == [{
        "order_id": ORDER, "milestone": "ORPHAN", "due_at": T0 + HOUR_MS,
        "detected_at": T0 + HOUR_MS + 1, "clock": "EVENT", "channel": None, "region": None,
    }]
    orphan = [e for e in pipe.raised if e.code == Code.ORPHAN_EVENT]
    assert len(orphan) == 1 and orphan[0].cause_event_id == first["event_id"]
    assert orphan[0].occurred_at == T0 + HOUR_MS + 1
    assert pipe.statuses_of(ORDER) == []  # nothing is published before OrderPlaced


def test_orphan_on_time_never_breaches(pipe: SlaPipeline) -> None:
    ev = Events()
    pipe.event(at(ev.dispatched("S1", {"L1": 1}), T0))
    placed(pipe, ev, T0 + HOUR_MS)
    pipe.tick(T0 + 2 * HOUR_MS)
    assert of(pipe, Milestone.ORPHAN) == []


def test_orphan_late_breaches_then_order_placed_closes_it_late(pipe: SlaPipeline) -> None:
    ev = Events()
    pipe.event(at(ev.dispatched("S1", {"L1": 1}), T0))
    pipe.tick(T0 + 2 * HOUR_MS)
    placed(pipe, ev, T0 + 3 * HOUR_MS)
    assert [(b["due_at"], b["detected_at"]) for b in of(pipe, Milestone.ORPHAN)] == [
        (T0 + HOUR_MS, T0 + 2 * HOUR_MS)
    ]
    first_status = pipe.statuses_of(ORDER)[0]
    assert first_status["seq"] == 1 and first_status["open_breaches"] == []
    assert first_status["closed_breaches"] == [{
        "milestone": "ORPHAN", "due_at": T0 + HOUR_MS, "detected_at": T0 + 2 * HOUR_MS,
        "met_at": T0 + 3 * HOUR_MS, "late": True,
    }]


def test_orphan_on_the_wall_clock_counts_from_arrival(tmp_path: Path) -> None:
    wall = [T0 + 10 * HOUR_MS]  # the first buffered event arrives 10 h after it occurred
    pipe = SlaPipeline(tmp_path / "due", clock="wall", wall=wall)
    ev = Events()
    pipe.event(at(ev.dispatched("S1", {"L1": 1}), T0))
    state = pipe.states[ORDER]
    assert pending_deadlines(state, pipe.policy, "wall") == {Milestone.ORPHAN: T0 + 11 * HOUR_MS}
    assert pending_deadlines(state, pipe.policy, "event") == {Milestone.ORPHAN: T0 + HOUR_MS}
    assert pipe.breaches == []
    wall[0] = T0 + 11 * HOUR_MS + 1
    pipe.check()
    assert [(b["milestone"], b["due_at"], b["detected_at"], b["clock"]) for b in pipe.breaches] == [
        ("ORPHAN", T0 + 11 * HOUR_MS, T0 + 11 * HOUR_MS + 1, "WALL")
    ]
    pipe.close()


# -- what closes a breach besides the milestone ------------------------------------------------
def test_cancellation_withdraws_open_breaches_and_all_deadlines(pipe: SlaPipeline) -> None:
    ev = Events()
    placed(pipe, ev, promised_ship_at=T0 + 2 * HOUR_MS)
    pipe.tick(T0 + 5 * HOUR_MS)
    assert {b["milestone"] for b in pipe.breaches_of(ORDER)} == {"ACCEPTANCE", "SHIPMENT"}
    pipe.event(at(ev.cancelled(), T0 + 6 * HOUR_MS))
    state = pipe.states[ORDER]
    assert state.open_breaches == []
    assert [(b["milestone"], b["met_at"], b["late"]) for b in state.closed_breaches] == [
        ("SHIPMENT", None, False), ("ACCEPTANCE", None, False),
    ]
    assert pending_deadlines(state, pipe.policy, "event") == {}
    assert pipe.index.deadlines(ORDER) == {}


def test_met_on_time_after_detection_closes_not_late(tmp_path: Path) -> None:
    """Wall clock: the acceptance happened before its due time but arrived after it."""
    wall = [T0]
    pipe = SlaPipeline(tmp_path / "due", clock="wall", wall=wall)
    ev = Events()
    placed(pipe, ev)
    wall[0] = T0 + 4 * HOUR_MS + 1000
    pipe.check()
    assert [b["milestone"] for b in pipe.breaches_of(ORDER)] == ["ACCEPTANCE"]
    wall[0] = T0 + 4 * HOUR_MS + 2000
    pipe.event(at(ev.accepted(), T0 + 3 * HOUR_MS))
    assert pipe.states[ORDER].closed_breaches == [{
        "milestone": "ACCEPTANCE", "due_at": T0 + 4 * HOUR_MS, "detected_at": T0 + 4 * HOUR_MS + 1000,
        "met_at": T0 + 3 * HOUR_MS, "late": False,
    }]
    pipe.close()


# -- the pure functions directly ---------------------------------------------------------------
def test_record_breach_is_idempotent_even_after_the_breach_closed() -> None:
    s = OrderState("SO-9", channel="EDI", region="EU", placed_at=T0)
    first = record_breach(s, Milestone.ACCEPTANCE, T0 + 1, T0 + 2, "wall")
    assert first == {"order_id": "SO-9", "milestone": "ACCEPTANCE", "due_at": T0 + 1,
                     "detected_at": T0 + 2, "clock": "WALL", "channel": "EDI", "region": "EU"}
    assert record_breach(s, Milestone.ACCEPTANCE, T0 + 1, T0 + 3, "wall") is None
    s.accepted_at = T0 + 5
    assert [c["milestone"] for c in close_met_breaches(s, T0 + 5)] == ["ACCEPTANCE"]
    assert record_breach(s, Milestone.ACCEPTANCE, T0 + 1, T0 + 9, "wall") is None
    assert breach_due(s, SlaPolicy(), "wall", T0 + 100 * DAY_MS)[0] != []  # others still can
    assert len(s.open_breaches) + len(s.closed_breaches) == len({
        b["milestone"] for b in s.open_breaches + s.closed_breaches
    })
    with pytest.raises(ValueError, match="unknown SLA milestone"):
        record_breach(s, "SHIPPING", 0, 0, "wall")


def test_state_without_closed_breaches_field_still_reads() -> None:
    s = OrderState("SO-9")
    s.closed_breaches.append({"milestone": "ORPHAN", "due_at": 1, "detected_at": 2,
                              "met_at": 3, "late": True})
    assert OrderState.from_bytes(s.to_bytes()) == s
    older = json.loads(s.to_bytes())[:35]  # as written before closed_breaches (and the timeline) existed
    assert OrderState.from_bytes(json.dumps(older)).closed_breaches == []


def test_breach_listings_merge_by_due_time_then_milestone_then_order():
    def breach(due_at: int, milestone: str, order_id: str) -> dict[str, Any]:
        return {"due_at": due_at, "milestone": milestone, "order_id": order_id}

    one = [breach(1, Milestone.SHIPMENT, "SO-2"), breach(5, Milestone.ACCEPTANCE, "SO-9")]
    two = [breach(1, Milestone.ACCEPTANCE, "SO-3"), breach(1, Milestone.SHIPMENT, "SO-1"), breach(7, Milestone.PAYMENT, "SO-0")]
    merged = [(b["due_at"], b["milestone"], b["order_id"]) for b in merge_breach_listings([one, two])]
    assert merged == [
        (1, Milestone.ACCEPTANCE, "SO-3"),
        (1, Milestone.SHIPMENT, "SO-1"),
        (1, Milestone.SHIPMENT, "SO-2"),
        (5, Milestone.ACCEPTANCE, "SO-9"),
        (7, Milestone.PAYMENT, "SO-0"),
    ]
