"""Example-based tests of the order model: one test per SPEC §4 rule and exception code."""

from __future__ import annotations

import json

import pytest

from tables.allocation import (
    AllocationRelease,
    AllocationRequest,
    AllocationResult,
    StockIssue,
    message_from_dict,
)
from tables.exceptions import ALL_CODES, BusinessException, Code
from tables.order import InvalidEvent, Outcome, apply_allocation, apply_event
from tables.order_state import (
    MAX_BUFFERED_EVENTS,
    MAX_RECENT_EXCEPTIONS,
    MAX_SEEN_EVENT_IDS,
    MILESTONES,
    OrderState,
)
from tables.status import derive_status
from tables.views import status_event, to_view
from tests.unit.test_order_support import T0, FakeInventory, Harness

LINES = [("L1", "SKU-A", 10, 250), ("L2", "SKU-B", 5, 1000)]  # 2500 + 5000 = 7500


def B(ordered, cancelled=0, allocated=0, backordered=0, pending=0, shipped=0, delivered=0,
      invoiced=0):
    return {
        "ordered": ordered, "cancelled": cancelled, "allocated": allocated,
        "backordered": backordered, "pending": pending, "shipped": shipped,
        "delivered": delivered, "invoiced": invoiced,
    }


def placed(h: Harness, lines=LINES, **kw):
    return h.apply(h.ev.placed(lines, **kw))


def accepted_allocated(inv: FakeInventory | None = None) -> Harness:
    h = Harness(inventory=inv)
    placed(h)
    h.apply(h.ev.accepted())
    h.settle()
    return h


def status(h: Harness) -> str | None:
    return derive_status(h.state)


# -- happy path -----------------------------------------------------------------------------
def test_happy_path_to_closed():
    h = Harness()
    out = placed(h)
    assert out.changed and out.publish and not out.allocation
    assert status(h) == "SUBMITTED"
    assert h.buckets("L1") == B(10)

    out = h.apply(h.ev.accepted())
    assert status(h) == "ACCEPTED"
    assert [(m.line_id, m.sku, m.quantity, m.warehouse_id, m.seq) for m in out.allocation] == [
        ("L1", "SKU-A", 10, None, 1),
        ("L2", "SKU-B", 5, None, 1),
    ]
    assert all(isinstance(m, AllocationRequest) for m in out.allocation)
    assert h.buckets("L1") == B(10, pending=10)

    h.settle()
    assert status(h) == "ALLOCATED"
    assert h.buckets("L1") == B(10, allocated=10)
    assert h.line("L1").warehouse_id == "W1"
    assert h.state.allocated_at is not None

    out = h.apply(h.ev.dispatched("S1", {"L1": 10, "L2": 5}, wh="W1"))
    assert [(m.line_id, m.quantity, m.warehouse_id, m.reserved_warehouse) for m in out.allocation] \
        == [("L1", 10, "W1", "W1"), ("L2", 5, "W1", "W1")]
    assert all(isinstance(m, StockIssue) for m in out.allocation)
    assert status(h) == "SHIPPED"
    assert h.buckets("L1") == B(10, shipped=10)
    h.settle()
    assert h.buckets("L1") == B(10, shipped=10)

    h.apply(h.ev.delivered("S1"))
    assert status(h) == "DELIVERED"
    assert h.buckets("L2") == B(5, shipped=5, delivered=5)

    h.apply(h.ev.invoice("I1", {"L1": (10, 2500), "L2": (5, 5000)}))
    assert status(h) == "INVOICED"
    assert h.state.invoiced_minor == 7500
    assert h.buckets("L1") == B(10, shipped=10, delivered=10, invoiced=10)

    h.apply(h.ev.payment("P1", 5000, "I1"))
    assert status(h) == "PARTIALLY_PAID"
    h.apply(h.ev.payment("P2", 2500, "I1"))
    assert status(h) == "CLOSED"
    assert h.codes() == []

    st = h.state
    assert all(getattr(st, m) is not None for m in MILESTONES if m != "cancelled_at")
    assert st.cancelled_at is None
    assert st.placed_at < st.accepted_at <= st.allocated_at < st.shipped_at < st.delivered_at
    assert st.delivered_at < st.invoiced_at < st.paid_at == st.closed_at

    seqs = [p["seq"] for p in h.published]
    assert seqs == list(range(1, len(seqs) + 1))
    statuses = [p["status"] for p in h.published]
    assert [p["previous_status"] for p in h.published] == [None] + statuses[:-1]
    assert statuses[0] == "SUBMITTED" and statuses[-1] == "CLOSED"
    assert h.published[-1]["open_balance_minor"] == 0


def test_partial_shipment_then_invoice_of_shipped_quantity_only():
    h = accepted_allocated()
    h.apply(h.ev.dispatched("S1", {"L1": 4}))
    assert status(h) == "PARTIALLY_SHIPPED"
    assert h.buckets("L1") == B(10, allocated=6, shipped=4)
    h.settle()
    assert h.buckets("L1") == B(10, allocated=6, shipped=4)

    h.apply(h.ev.invoice("I1", {"L1": (4, 1000)}))
    assert h.codes() == []
    assert h.buckets("L1") == B(10, allocated=6, shipped=4, invoiced=4)
    assert h.state.invoiced_minor == 1000
    assert status(h) == "PARTIALLY_SHIPPED"
    assert h.state.shipped_at is None and h.state.invoiced_at is None


def test_invoice_exceeding_shipped_is_not_counted_and_waits_for_shipments():
    h = accepted_allocated()
    h.apply(h.ev.dispatched("S1", {"L1": 4}))
    out = h.apply(h.ev.invoice("I1", {"L1": (6, 1500)}))
    assert [e.code for e in out.exceptions] == [Code.INVOICE_EXCEEDS_SHIPPED]
    assert out.exceptions[0].sku == "SKU-A"
    assert h.buckets("L1")["invoiced"] == 4
    assert h.line("L1").invoice_parked == 2
    assert h.state.invoiced_minor == 1500  # the money billed is a fact
    # the matching shipment arrives later: the parked quantity is counted then
    h.apply(h.ev.dispatched("S2", {"L1": 3}))
    assert h.buckets("L1")["invoiced"] == 6 and h.line("L1").invoice_parked == 0
    assert h.buckets("L1")["invoiced"] <= h.buckets("L1")["shipped"]


# -- allocation ------------------------------------------------------------------------------
def test_accepted_order_without_answers_stays_accepted_with_pending():
    h = Harness()
    placed(h)
    h.apply(h.ev.accepted())
    assert status(h) == "ACCEPTED"
    assert h.buckets("L1") == B(10, pending=10)
    assert h.state.allocated_at is None


def test_partial_allocation_backorder_and_fill():
    h = accepted_allocated(FakeInventory(caps={"L1": 4, "L2": 0}))
    assert h.buckets("L1") == B(10, allocated=4, backordered=6)
    assert h.buckets("L2") == B(5, backordered=5)
    assert h.line("L1").promised_at == h.inv.promise_at
    assert status(h) == "PARTIALLY_ALLOCATED"
    assert h.state.allocated_at is None  # backorders count as not allocated

    h.inv.restock("SO-1", "L1", 6, T0 + 10)
    h.inv.restock("SO-1", "L2", 5, T0 + 11)
    h.settle()
    assert h.buckets("L1") == B(10, allocated=10)
    assert h.line("L1").promised_at is None
    assert status(h) == "ALLOCATED"
    assert h.state.allocated_at == T0 + 11


def test_an_order_awaits_the_inventory_while_a_request_is_unanswered_or_a_line_backordered():
    """What makes the runtime hold the order's next event until the answers caught up (issue 13)."""
    h = Harness(inventory=FakeInventory(caps={"L1": 4, "L2": 5}))
    placed(h)
    assert not h.state.awaits_inventory  # nothing asked yet
    h.apply(h.ev.accepted())
    assert h.state.awaits_inventory  # requests sent, not answered
    h.settle()
    assert h.buckets("L1") == B(10, allocated=4, backordered=6)
    assert h.state.awaits_inventory  # answered, but stock arriving would fill the backorder
    h.inv.restock("SO-1", "L1", 6, T0 + 10)
    h.settle()
    assert status(h) == "ALLOCATED" and not h.state.awaits_inventory


def test_backordered_status_when_nothing_allocated():
    h = accepted_allocated(FakeInventory(default_cap=0))
    assert status(h) == "BACKORDERED"
    assert h.buckets("L2") == B(5, backordered=5)


def test_cancel_takes_backordered_first_then_allocated_and_releases():
    h = accepted_allocated(FakeInventory(caps={"L1": 6}))
    assert h.buckets("L1") == B(10, allocated=6, backordered=4)
    out = h.apply(h.ev.line_cancelled("L1", 5))
    assert h.buckets("L1") == B(10, cancelled=5, allocated=5)
    (rel,) = out.allocation
    assert isinstance(rel, AllocationRelease)
    assert (rel.line_id, rel.sku, rel.quantity, rel.warehouse_id) == ("L1", "SKU-A", 5, "W1")
    h.settle()  # the inventory agrees
    assert h.buckets("L1") == B(10, cancelled=5, allocated=5)
    assert h.line("L1").inflight == []


def test_dispatch_takes_allocated_then_backordered_then_unallocated():
    h = Harness(inventory=FakeInventory(caps={"L1": 3}))
    placed(h)
    h.apply(h.ev.accepted())
    h.settle()
    assert h.buckets("L1") == B(10, allocated=3, backordered=7)
    h.apply(h.ev.dispatched("S1", {"L1": 5}))  # 3 allocated + 2 backordered
    assert h.buckets("L1") == B(10, backordered=5, shipped=5)
    # unanswered request: shipping takes not-yet-allocated (pending) quantity
    h2 = Harness()
    placed(h2)
    h2.apply(h2.ev.accepted())
    h2.apply(h2.ev.dispatched("S1", {"L1": 4}))
    assert h2.buckets("L1") == B(10, pending=6, shipped=4)
    h2.settle()
    assert h2.buckets("L1") == B(10, allocated=6, shipped=4)


def test_ship_from_other_warehouse_issues_there_and_releases_reservation():
    h = Harness()
    placed(h, [("L1", "SKU-A", 10, 250, "W1")])
    h.apply(h.ev.accepted())
    h.settle()
    out = h.apply(h.ev.dispatched("S1", {"L1": 10}, wh="W9"))
    (issue,) = out.allocation
    assert (issue.warehouse_id, issue.reserved_warehouse, issue.quantity) == ("W9", "W1", 10)
    assert h.state.shipments["S1"].warehouse_id == "W9"
    assert h.buckets("L1") == B(10, shipped=10)


def test_requests_use_requested_warehouse_and_acceptance_time():
    h = Harness()
    placed(h, [("L1", "SKU-A", 10, 250, "W2")])
    acc = h.ev.accepted()
    out = h.apply(acc)
    (req,) = out.allocation
    assert (req.warehouse_id, req.accepted_at, req.requested_at) == (
        "W2", acc["occurred_at"], acc["occurred_at"],
    )
    assert req.cause_event_id == acc["event_id"]


def test_results_crossing_a_cancel_in_flight_converge():
    h = Harness(inventory=FakeInventory(caps={"L1": 6}))
    placed(h, [("L1", "SKU-A", 10, 250)])
    h.apply(h.ev.accepted())  # request seq 1 (10)
    h.inv.process_one()  # inventory: allocated 6, backordered 4; answer in flight
    h.apply(h.ev.line_cancelled("L1", 5))  # release seq 2, decided before the answer
    assert h.buckets("L1") == B(10, cancelled=5, pending=5)
    h.apply_result(h.inv.deliver_one())  # ack 1: replay the release on it
    assert h.buckets("L1") == B(10, cancelled=5, allocated=5)
    assert h.line("L1").inflight == [[2, 0, 5]]
    h.settle()  # ack 2
    assert h.buckets("L1") == B(10, cancelled=5, allocated=5)
    assert h.line("L1").inflight == []
    assert h.codes() == []


def test_fill_crossing_a_dispatch_in_flight_converges():
    h = Harness(inventory=FakeInventory(caps={"L1": 2}))
    placed(h, [("L1", "SKU-A", 10, 250)])
    h.apply(h.ev.accepted())
    h.settle()
    assert h.buckets("L1") == B(10, allocated=2, backordered=8)
    h.inv.restock("SO-1", "L1", 5, T0 + 5)  # fill: 7 allocated, 3 backordered, in flight
    h.apply(h.ev.dispatched("S1", {"L1": 4}))  # the order takes 2 allocated + 2 backordered
    assert h.buckets("L1") == B(10, backordered=6, shipped=4)
    h.apply_result(h.inv.deliver_one())  # fill (ack 1), the issue replayed: 3 allocated
    assert h.buckets("L1") == B(10, allocated=3, backordered=3, shipped=4)
    h.settle()
    assert h.buckets("L1") == B(10, allocated=3, backordered=3, shipped=4)


def test_line_change_up_and_down():
    h = Harness()
    placed(h)
    # before acceptance: no allocation messages
    out = h.apply(h.ev.line_changed("L1", 12))
    assert h.buckets("L1") == B(12) and out.allocation == []
    out = h.apply(h.ev.line_changed("L1", 9))
    assert h.buckets("L1") == B(12, cancelled=3) and out.allocation == []
    h.apply(h.ev.accepted())
    h.settle()
    assert h.buckets("L1") == B(12, cancelled=3, allocated=9)
    # after acceptance: an increase requests allocation, a decrease releases
    out = h.apply(h.ev.line_changed("L1", 11))
    (req,) = out.allocation
    assert isinstance(req, AllocationRequest) and req.quantity == 2 and req.warehouse_id == "W1"
    assert h.buckets("L1") == B(14, cancelled=3, allocated=9, pending=2)
    assert status(h) == "PARTIALLY_ALLOCATED"
    h.settle()
    assert h.buckets("L1") == B(14, cancelled=3, allocated=11)
    out = h.apply(h.ev.line_changed("L1", 7))
    (rel,) = out.allocation
    assert isinstance(rel, AllocationRelease) and rel.quantity == 4
    assert h.buckets("L1") == B(14, cancelled=7, allocated=7)
    out = h.apply(h.ev.line_changed("L1", 7))  # no change at all
    assert out.changed and not out.publish and out.allocation == []
    assert h.codes() == []


def test_line_change_below_shipped():
    h = accepted_allocated()
    h.apply(h.ev.dispatched("S1", {"L1": 6}))
    out = h.apply(h.ev.line_changed("L1", 4))
    assert [e.code for e in out.exceptions] == [Code.CHANGE_BELOW_SHIPPED]
    assert h.buckets("L1") == B(10, cancelled=4, shipped=6)


# -- cancels -----------------------------------------------------------------------------------
def test_line_cancel_and_order_cancelled_status():
    h = accepted_allocated()
    h.apply(h.ev.line_cancelled("L1"))  # all unshipped
    assert h.buckets("L1") == B(10, cancelled=10)
    assert status(h) == "ALLOCATED"  # L2 still fully allocated
    assert h.state.cancelled_at is None
    h.apply(h.ev.line_cancelled("L2", 5))
    assert status(h) == "CANCELLED"
    assert h.state.cancelled_at is not None
    assert h.codes() == []


def test_order_cancelled_releases_everything_unshipped():
    h = accepted_allocated(FakeInventory(caps={"L1": 6}))
    h.apply(h.ev.dispatched("S1", {"L2": 2}))
    out = h.apply(h.ev.cancelled())
    assert sorted((m.line_id, m.quantity) for m in out.allocation) == [("L1", 10), ("L2", 3)]
    assert h.buckets("L1") == B(10, cancelled=10)
    assert h.buckets("L2") == B(5, cancelled=3, shipped=2)
    assert status(h) == "SHIPPED"  # not every line fully cancelled: 2 units went out
    assert h.state.shipped_at is not None and h.state.cancelled_at is None
    h.settle()
    assert h.buckets("L1") == B(10, cancelled=10)


def test_cancel_before_acceptance_sends_nothing():
    h = Harness()
    placed(h)
    out = h.apply(h.ev.cancelled())
    assert out.allocation == [] and status(h) == "CANCELLED"
    out = h.apply(h.ev.accepted())
    assert [e.code for e in out.exceptions] == [Code.EVENT_AFTER_CANCEL]
    assert h.state.accepted_at is None and out.allocation == []


def test_events_after_cancel():
    h = accepted_allocated()
    h.apply(h.ev.cancelled())
    assert status(h) == "CANCELLED"
    h.raised.clear()
    h.apply(h.ev.cancelled())
    h.apply(h.ev.line_cancelled("L1"))
    h.apply(h.ev.line_changed("L1", 20))
    out = h.apply(h.ev.dispatched("S1", {"L1": 3}))
    assert h.codes() == [Code.EVENT_AFTER_CANCEL] * 4
    assert h.buckets("L1") == B(10, cancelled=10)  # nothing shipped is counted
    (issue,) = out.allocation  # ... but the stock did leave the warehouse
    assert isinstance(issue, StockIssue) and issue.quantity == 3
    assert status(h) == "CANCELLED"


def test_partial_cancel_then_shipping_cancelled_quantity():
    h = accepted_allocated()
    h.apply(h.ev.line_cancelled("L1", 4))
    out = h.apply(h.ev.dispatched("S1", {"L1": 8}))
    assert [e.code for e in out.exceptions] == [Code.EVENT_AFTER_CANCEL]
    assert h.buckets("L1") == B(10, cancelled=4, shipped=6)


def test_cancel_exceeds_open():
    h = accepted_allocated()
    h.apply(h.ev.dispatched("S1", {"L1": 7}))
    out = h.apply(h.ev.line_cancelled("L1", 5))
    assert [e.code for e in out.exceptions] == [Code.CANCEL_EXCEEDS_OPEN]
    assert h.buckets("L1") == B(10, cancelled=3, shipped=7)
    out = h.apply(h.ev.line_cancelled("L1"))  # nothing unshipped left
    assert [e.code for e in out.exceptions] == [Code.CANCEL_EXCEEDS_OPEN]
    h.apply(h.ev.dispatched("S2", {"L2": 5}))
    out = h.apply(h.ev.cancelled())
    assert [e.code for e in out.exceptions] == [Code.CANCEL_EXCEEDS_OPEN]


# -- holds ---------------------------------------------------------------------------------------
def test_hold_and_release():
    h = accepted_allocated()
    out = h.apply(h.ev.hold("CREDIT", "limit"))
    assert out.publish and status(h) == "ON_HOLD"
    assert h.published[-1]["holds"] == ["CREDIT"]
    out = h.apply(h.ev.hold("CREDIT", "limit again"))  # already active: reason refreshed only
    assert out.changed and not out.publish and out.exceptions == []
    assert h.state.holds["CREDIT"][0] == "limit again"
    h.apply(h.ev.hold("FRAUD"))
    h.apply(h.ev.release("CREDIT"))
    assert status(h) == "ON_HOLD"
    h.apply(h.ev.release("FRAUD"))
    assert status(h) == "ALLOCATED"
    out = h.apply(h.ev.release("FRAUD"))
    assert [e.code for e in out.exceptions] == [Code.HOLD_NOT_ACTIVE]
    assert status(h) == "ALLOCATED"


def test_hold_overrides_everything_but_cancelled():
    h = accepted_allocated()
    h.apply(h.ev.dispatched("S1", {"L1": 10, "L2": 5}))
    h.apply(h.ev.hold("COMPLIANCE"))
    assert status(h) == "ON_HOLD"
    h.apply(h.ev.release("COMPLIANCE"))
    assert status(h) == "SHIPPED"
    h2 = Harness()
    placed(h2)
    h2.apply(h2.ev.hold("MANUAL"))
    assert status(h2) == "ON_HOLD"  # rule 2 before SUBMITTED
    h2.apply(h2.ev.cancelled())
    assert status(h2) == "CANCELLED"


# -- idempotency and ordering ---------------------------------------------------------------
def test_duplicate_event_is_a_noop():
    h = Harness()
    e_placed = h.ev.placed(LINES)
    h.apply(e_placed)
    acc = h.ev.accepted()
    h.apply(acc)
    before = h.state.to_bytes()
    for dup in (acc, e_placed):
        out = h.apply(dup)
        assert out == Outcome(changed=False, duplicate=True)
        assert h.state.to_bytes() == before
    h.settle()
    res = AllocationResult("SO-1", "L1", "SKU-A", "W1", 10, 0, None, 1, "R1", T0)
    before = h.state.to_bytes()
    assert apply_allocation(h.state, res).duplicate
    assert h.state.to_bytes() == before


def test_shipment_before_order_is_buffered_then_applied():
    h = Harness()
    ship = h.ev.dispatched("S1", {"L1": 4})
    out = h.apply(ship, now=T0 + 999)
    assert out == Outcome(changed=True, buffered=True)
    assert h.published == [] and derive_status(h.state) is None
    assert h.state.orphan_since == ship["occurred_at"]
    assert h.state.orphan_since_wall == T0 + 999
    h.apply(h.ev.delivered("S1"))
    h.apply(h.ev.invoice("I1", {"L1": (4, 1000)}))
    assert len(h.state.buffer) == 3 and to_view(h.state)["buffered_events"] == 3
    assert h.state.lines == {}
    assert h.apply(ship).duplicate  # a buffered event is already "seen"

    out = h.apply(h.ev.placed(LINES))
    assert out.publish and not out.buffered and out.exceptions == []
    assert h.state.buffer == [] and h.state.orphan_since is None
    assert h.buckets("L1") == B(10, shipped=4, delivered=4, invoiced=4)
    assert status(h) == "SUBMITTED"
    assert [p["seq"] for p in h.published] == [1]
    assert h.published[0]["previous_status"] is None
    # acceptance later requests only the unshipped quantity
    out = h.apply(h.ev.accepted())
    assert [(m.line_id, m.quantity) for m in out.allocation] == [("L1", 6), ("L2", 5)]
    assert h.buckets("L1") == B(10, pending=6, shipped=4, delivered=4, invoiced=4)
    assert status(h) == "PARTIALLY_SHIPPED"


def test_buffer_is_bounded():
    h = Harness()
    for _ in range(MAX_BUFFERED_EVENTS):
        h.apply(h.ev.hold("MANUAL"))
    out = h.apply(h.ev.hold("CREDIT"))
    assert [e.code for e in out.exceptions] == [Code.BUFFER_FULL]
    assert not out.publish and len(h.state.buffer) == MAX_BUFFERED_EVENTS


def test_event_buffered_twice_is_applied_once():
    h = Harness()
    cancel = h.ev.line_cancelled("L1", 2)
    h.apply(cancel)
    for _ in range(MAX_SEEN_EVENT_IDS):  # evicts the cancel's id from the seen window
        h.apply(h.ev.make("InventoryReceived"))
    assert cancel["event_id"] not in h.state.seen
    assert h.apply(cancel).buffered
    h.apply(h.ev.placed(LINES))
    assert h.buckets("L1") == B(10, cancelled=2)
    assert cancel["event_id"] in h.state.seen


def test_bad_buffered_event_becomes_invalid_event_exception():
    h = Harness()
    bad = h.ev.make("ShipmentDispatched", shipment_id="S1")  # no lines
    h.apply(bad)
    out = h.apply(h.ev.placed(LINES))
    assert [(e.code, e.cause_event_id) for e in out.exceptions] == [
        (Code.INVALID_EVENT, bad["event_id"])
    ]
    assert status(h) == "SUBMITTED"


def test_seen_event_ids_are_bounded():
    h = Harness()
    first = h.ev.placed(LINES)
    h.apply(first)
    for _ in range(MAX_SEEN_EVENT_IDS):
        h.apply(h.ev.hold("MANUAL"))
    assert len(h.state.seen) == MAX_SEEN_EVENT_IDS
    assert first["event_id"] not in h.state.seen
    # beyond the window a re-sent OrderPlaced is caught by its natural key instead
    out = h.apply(first)
    assert [e.code for e in out.exceptions] == [Code.DUPLICATE_ORDER]


# -- payments --------------------------------------------------------------------------------
def shipped_and_invoiced() -> Harness:
    h = accepted_allocated()
    h.apply(h.ev.dispatched("S1", {"L1": 10, "L2": 5}))
    h.apply(h.ev.invoice("I1", {"L1": (10, 2500), "L2": (5, 5000)}))
    return h


def test_overpayment():
    h = shipped_and_invoiced()
    out = h.apply(h.ev.payment("P1", 8000, "I1"))  # invoice level
    assert [e.code for e in out.exceptions] == [Code.OVERPAYMENT]
    assert h.state.paid_minor == 8000 and status(h) == "CLOSED"
    assert h.state.open_balance_minor == -500
    out = h.apply(h.ev.payment("P2", 100))  # unapplied cash on a fully invoiced order
    assert [e.code for e in out.exceptions] == [Code.OVERPAYMENT]


def test_prepayment_is_not_an_overpayment_until_fully_invoiced():
    h = accepted_allocated()
    out = h.apply(h.ev.payment("P1", 8000))  # ECOM pays at checkout
    assert out.exceptions == []
    h.apply(h.ev.dispatched("S1", {"L1": 10, "L2": 5}))
    assert status(h) == "PARTIALLY_PAID"  # rule 4: anything paid
    out = h.apply(h.ev.invoice("I1", {"L1": (10, 2500), "L2": (5, 5000)}))
    assert [e.code for e in out.exceptions] == [Code.OVERPAYMENT]  # credit balance revealed
    assert status(h) == "CLOSED"


def test_refund():
    h = shipped_and_invoiced()
    h.apply(h.ev.payment("P1", 7500, "I1"))
    assert status(h) == "CLOSED"
    closed_at = h.state.closed_at
    out = h.apply(h.ev.refund("P1", 2000))
    assert out.exceptions == [] and out.publish
    assert (h.state.paid_minor, h.state.refunded_minor) == (7500, 2000)
    assert h.state.open_balance_minor == 2000
    assert status(h) == "PARTIALLY_PAID"
    assert h.state.closed_at == closed_at  # milestones are sticky
    out = h.apply(h.ev.refund("P1", 6000))
    assert [e.code for e in out.exceptions] == [Code.REFUND_EXCEEDS_PAID]
    assert h.state.refunded_minor == 8000 and status(h) == "INVOICED"  # net paid <= 0


def test_refund_of_unknown_payment_then_payment():
    h = shipped_and_invoiced()
    out = h.apply(h.ev.refund("P9", 300))
    assert [e.code for e in out.exceptions] == [Code.UNKNOWN_PAYMENT]
    assert h.state.refunded_minor == 300
    out = h.apply(h.ev.payment("P9", 200, "I1"))
    assert [e.code for e in out.exceptions] == [Code.REFUND_EXCEEDS_PAID]
    assert h.state.paid_minor == 200


def test_payment_of_unknown_invoice_is_counted():
    h = shipped_and_invoiced()
    out = h.apply(h.ev.payment("P1", 7500, "I-NOPE"))
    assert [e.code for e in out.exceptions] == [Code.UNKNOWN_INVOICE]
    assert h.state.paid_minor == 7500 and status(h) == "CLOSED"


def test_payment_duplicates_and_invalid_amounts():
    h = shipped_and_invoiced()
    h.apply(h.ev.payment("P1", 100, "I1"))
    out = h.apply(h.ev.payment("P1", 100, "I1"))
    assert [e.code for e in out.exceptions] == [Code.DUPLICATE_PAYMENT]
    assert h.state.paid_minor == 100
    out = h.apply(h.ev.payment("P2", -5))
    assert [e.code for e in out.exceptions] == [Code.INVALID_AMOUNT]
    out = h.apply(h.ev.refund("P1", -5))
    assert [e.code for e in out.exceptions] == [Code.INVALID_AMOUNT]
    out = h.apply(h.ev.invoice("I2", {}, total=-10))
    assert [e.code for e in out.exceptions] == [Code.INVALID_AMOUNT]
    out = h.apply(h.ev.invoice("I1", {"L1": (1, 1)}))
    assert [e.code for e in out.exceptions] == [Code.DUPLICATE_INVOICE]
    assert h.state.invoiced_minor == 7500


def test_invoice_due_date_defaults_to_payment_terms():
    h = Harness()
    placed(h, payment_terms_days=45)
    inv = h.ev.invoice("I1", {})
    h.apply(inv)
    assert h.state.invoices["I1"].due_at == inv["occurred_at"] + 45 * 86_400_000
    h.apply(h.ev.invoice("I2", {}, due_at=T0 + 5))
    assert h.state.invoices["I2"].due_at == T0 + 5


# -- shipments ---------------------------------------------------------------------------------
def test_ship_exceeds_ordered():
    h = accepted_allocated()
    out = h.apply(h.ev.dispatched("S1", {"L1": 12}))
    assert [e.code for e in out.exceptions] == [Code.SHIP_EXCEEDS_ORDERED]
    assert h.buckets("L1") == B(10, shipped=10)
    assert out.allocation[0].quantity == 12  # the stock ledger gets the physical quantity
    h.settle()
    assert h.buckets("L1") == B(10, shipped=10)
    assert Code.ALLOCATION_MISMATCH not in h.codes()


def test_delivered_marks_that_shipments_lines():
    h = accepted_allocated()
    h.apply(h.ev.dispatched("S1", {"L1": 4, "L2": 5}))
    h.apply(h.ev.dispatched("S2", {"L1": 6}))
    h.apply(h.ev.delivered("S2"))
    assert h.buckets("L1")["delivered"] == 6 and h.buckets("L2")["delivered"] == 0
    assert status(h) == "SHIPPED"
    h.apply(h.ev.delivered("S1"))
    assert status(h) == "DELIVERED"
    out = h.apply(h.ev.delivered("S1"))
    assert [e.code for e in out.exceptions] == [Code.DUPLICATE_DELIVERY]
    assert h.buckets("L1")["delivered"] == 10


def test_shipment_codes():
    h = accepted_allocated()
    out = h.apply(h.ev.delivered("S1"))
    assert [e.code for e in out.exceptions] == [Code.UNKNOWN_SHIPMENT]
    out = h.apply(h.ev.dispatched("S1", {"L1": 2, "LX": 1}))
    assert [e.code for e in out.exceptions] == [Code.UNKNOWN_LINE]
    assert h.buckets("L1") == B(10, allocated=8, shipped=2, delivered=2)  # early delivery
    out = h.apply(h.ev.dispatched("S1", {"L1": 2}))
    assert [e.code for e in out.exceptions] == [Code.DUPLICATE_SHIPMENT]
    out = h.apply(h.ev.dispatched("S3", {"L1": -1}))
    assert [e.code for e in out.exceptions] == [Code.INVALID_QUANTITY]
    assert h.buckets("L1")["shipped"] == 2


def test_picked_is_a_milestone_only():
    h = accepted_allocated()
    before = h.buckets("L1")
    out = h.apply(h.ev.picked("S1", {"L1": 3}))
    assert out.changed and not out.publish and out.exceptions == []
    assert h.buckets("L1") == before
    assert h.state.shipments["S1"].picked_at is not None
    out = h.apply(h.ev.picked("S2", {"LX": 3}))
    assert [e.code for e in out.exceptions] == [Code.UNKNOWN_LINE] and out.publish
    h.apply(h.ev.dispatched("S1", {"L1": 3}))
    assert h.state.shipments["S1"].dispatched_at is not None
    assert h.buckets("L1")["shipped"] == 3


# -- other codes ---------------------------------------------------------------------------------
def test_order_codes():
    h = Harness()
    out = placed(h, [("L1", "SKU-A", 10, 250), ("L1", "SKU-Z", 1, 1), ("L3", "SKU-C", -2, 1)])
    assert [e.code for e in out.exceptions] == [Code.DUPLICATE_LINE, Code.INVALID_QUANTITY]
    assert h.line("L1").sku == "SKU-A" and h.buckets("L3") == B(0)
    out = placed(h)
    assert [e.code for e in out.exceptions] == [Code.DUPLICATE_ORDER]
    h.apply(h.ev.accepted())
    out = h.apply(h.ev.accepted())
    assert [e.code for e in out.exceptions] == [Code.ALREADY_ACCEPTED] and out.allocation == []
    for ev in (h.ev.line_changed("LX", 3), h.ev.line_cancelled("LX"),
               h.ev.invoice("I1", {"LX": (1, 1)})):
        out = h.apply(ev)
        assert [e.code for e in out.exceptions] == [Code.UNKNOWN_LINE]
    out = h.apply(h.ev.line_changed("L1", -3))
    assert [e.code for e in out.exceptions] == [Code.INVALID_QUANTITY]
    out = h.apply(h.ev.line_cancelled("L1", -3))
    assert [e.code for e in out.exceptions] == [Code.INVALID_QUANTITY]
    out = h.apply(h.ev.make("InventoryReceived", warehouse_id="W1", sku="SKU-A", quantity=1,
                            source_doc="x"))
    assert [e.code for e in out.exceptions] == [Code.UNKNOWN_EVENT_TYPE]
    assert h.buckets("L1") == B(10, pending=10)


def test_allocation_codes():
    h = Harness()
    placed(h)
    res = AllocationResult("SO-1", "L1", "SKU-A", "W1", 10, 0, None, 0, "R1", T0)
    out = h.apply_result(res)
    assert [e.code for e in out.exceptions] == [Code.UNEXPECTED_ALLOCATION]  # not accepted
    h.apply(h.ev.accepted())
    bad = [
        AllocationResult("SO-1", "LX", "SKU-A", "W1", 1, 0, None, 1, "R2", T0),
        AllocationResult("SO-1", "L1", "SKU-Z", "W1", 1, 0, None, 1, "R3", T0),
        AllocationResult("SO-1", "L1", "SKU-A", "W1", -1, 0, None, 1, "R4", T0),
        AllocationResult("SO-1", "L1", "SKU-A", "W1", 1, 0, None, 9, "R5", T0),
    ]
    assert [[e.code for e in h.apply_result(r).exceptions] for r in bad] == [
        [Code.UNKNOWN_LINE], [Code.UNEXPECTED_ALLOCATION], [Code.UNEXPECTED_ALLOCATION],
        [Code.UNEXPECTED_ALLOCATION],
    ]
    assert h.buckets("L1") == B(10, pending=10)
    out = h.apply_result(AllocationResult("SO-1", "L1", "SKU-A", "W1", 7, 0, None, 1, "R6", T0))
    assert [e.code for e in out.exceptions] == [Code.ALLOCATION_MISMATCH]
    assert h.buckets("L1") == B(10, allocated=7, pending=3)
    h.apply(h.ev.line_changed("L1", 11))  # seq 2
    h.apply_result(AllocationResult("SO-1", "L1", "SKU-A", "W1", 11, 0, None, 2, "R7", T0))
    out = h.apply_result(
        AllocationResult("SO-1", "L1", "SKU-A", "W1", 1, 0, None, 1, "R8", T0)
    )
    assert [e.code for e in out.exceptions] == [Code.STALE_ALLOCATION]
    assert h.buckets("L1") == B(11, allocated=11)
    with pytest.raises(InvalidEvent):
        apply_allocation(h.state, AllocationResult("SO-2", "L1", "SKU-A", None, 0, 0, None, 0,
                                                   "R9", T0))


def test_every_code_is_exercised_or_reserved():
    exercised = {
        "INVOICE_EXCEEDS_SHIPPED", "SHIP_EXCEEDS_ORDERED", "EVENT_AFTER_CANCEL", "UNKNOWN_LINE",
        "UNKNOWN_INVOICE", "OVERPAYMENT", "DUPLICATE_ORDER", "DUPLICATE_LINE",
        "ALREADY_ACCEPTED", "HOLD_NOT_ACTIVE", "CANCEL_EXCEEDS_OPEN", "CHANGE_BELOW_SHIPPED",
        "DUPLICATE_SHIPMENT", "UNKNOWN_SHIPMENT", "DUPLICATE_DELIVERY", "DUPLICATE_INVOICE",
        "DUPLICATE_PAYMENT", "UNKNOWN_PAYMENT", "REFUND_EXCEEDS_PAID", "INVALID_AMOUNT",
        "INVALID_QUANTITY", "UNKNOWN_EVENT_TYPE", "INVALID_EVENT", "BUFFER_FULL",
        "UNEXPECTED_ALLOCATION", "STALE_ALLOCATION", "ALLOCATION_MISMATCH",
    }
    assert ALL_CODES == exercised | {"ORPHAN_EVENT"}  # ORPHAN_EVENT: SLA engine, later


def test_invalid_events_raise():
    s = OrderState("SO-1")
    with pytest.raises(InvalidEvent):
        apply_event(s, {"event_type": "OrderAccepted", "occurred_at": T0})
    with pytest.raises(InvalidEvent):
        apply_event(s, {"event_id": "x", "event_type": "OrderAccepted", "occurred_at": T0,
                        "order_id": "SO-2"})
    with pytest.raises(InvalidEvent):
        apply_event(s, {"event_id": "y", "event_type": "OrderPlaced", "occurred_at": T0,
                        "order_id": "SO-1"})
    assert s == OrderState("SO-1")


# -- outputs -------------------------------------------------------------------------------------
def test_status_event_matches_the_contract():
    h = accepted_allocated(FakeInventory(caps={"L1": 4}))
    h.apply(h.ev.hold("CREDIT"))
    h.apply(h.ev.dispatched("S1", {"L2": 2}))
    h.apply(h.ev.invoice("I1", {"L2": (3, 3000)}))
    cause = h.ev.payment("P1", 1000, "I1")
    cause["correlation_id"] = "corr-7"
    apply_event(h.state, cause)
    seq = h.state.seq
    prev = h.state.last_status
    rec = status_event(h.state, cause, T0 + 123)
    assert list(rec) == [
        "order_id", "seq", "status", "previous_status", "customer_id", "channel", "region",
        "currency", "lines", "holds", "invoiced_minor", "paid_minor", "refunded_minor",
        "open_balance_minor", "milestones", "open_breaches", "closed_breaches", "exceptions",
        "cause_event_id", "cause_event_type", "occurred_at", "emitted_at", "correlation_id",
    ]
    assert rec["seq"] == seq + 1 == h.state.seq and rec["previous_status"] == prev
    assert rec["status"] == "ON_HOLD" and rec["holds"] == ["CREDIT"]
    assert rec["lines"][0] == {
        "line_id": "L1", "sku": "SKU-A", "warehouse_id": "W1", "ordered": 10, "cancelled": 0,
        "allocated": 4, "backordered": 6, "shipped": 0, "delivered": 0, "invoiced": 0,
        "promised_at": h.inv.promise_at,
    }
    assert (rec["invoiced_minor"], rec["paid_minor"], rec["open_balance_minor"]) == (
        3000, 1000, 2000,
    )
    assert list(rec["milestones"]) == list(MILESTONES)
    assert rec["open_breaches"] == []
    assert rec["exceptions"] == [{
        "code": "INVOICE_EXCEEDS_SHIPPED", "detail": h.state.exceptions[0].detail,
        "cause_event_id": h.state.exceptions[0].cause_event_id,
    }]
    assert (rec["cause_event_id"], rec["cause_event_type"], rec["occurred_at"],
            rec["emitted_at"], rec["correlation_id"]) == (
        cause["event_id"], "PaymentReceived", cause["occurred_at"], T0 + 123, "corr-7",
    )
    res_rec = status_event(
        h.state, AllocationResult("SO-1", "L1", "SKU-A", "W1", 4, 6, None, 1, "R77", T0 + 9), 1
    )
    assert (res_rec["cause_event_id"], res_rec["cause_event_type"], res_rec["occurred_at"]) == (
        "R77", "AllocationResult", T0 + 9,
    )
    assert res_rec["previous_status"] == "ON_HOLD"
    with pytest.raises(ValueError):
        status_event(OrderState("SO-9"), cause, 0)


def test_recent_exceptions_are_bounded():
    h = Harness()
    placed(h)
    for _ in range(MAX_RECENT_EXCEPTIONS + 5):
        h.apply(h.ev.release("CREDIT"))
    assert len(h.state.exceptions) == MAX_RECENT_EXCEPTIONS
    assert h.state.exceptions_total == MAX_RECENT_EXCEPTIONS + 5


def test_view_is_json_and_complete():
    h = shipped_and_invoiced()
    h.apply(h.ev.payment("P1", 7000, "I1"))
    h.apply(h.ev.hold("MANUAL", "check"))
    v = to_view(h.state)
    json.dumps(v)
    assert v["status"] == "ON_HOLD" and v["placed"] is True
    assert v["lines"][0]["shipped"] == 10 and v["lines"][0]["pending_allocation"] == 0
    assert v["holds"][0]["hold_type"] == "MANUAL" and v["holds"][0]["reason"] == "check"
    assert v["open_balance_minor"] == 500
    assert v["shipments"][0]["tracking_number"] == "1ZS1"
    assert v["invoices"][0]["applied_minor"] == 7000
    assert v["buffered_events"] == 0 and v["seq"] == h.state.seq
    assert set(v["milestones"]) == set(MILESTONES)


def test_serialization_round_trip_is_exact():
    h = Harness(inventory=FakeInventory(caps={"L1": 3}))
    h.apply(h.ev.dispatched("S0", {"L2": 1}))  # buffered
    placed(h)
    h.apply(h.ev.hold("CREDIT", "é unicode ✓"))
    h.apply(h.ev.accepted())
    h.inv.process_one()
    h.apply(h.ev.line_cancelled("L1", 2))  # in flight
    h.apply(h.ev.dispatched("S1", {"L1": 1}))
    h.apply(h.ev.delivered("S9"))
    h.apply(h.ev.invoice("I1", {"L1": (3, 750)}))
    h.apply(h.ev.payment("P1", 100, "I1"))
    h.apply(h.ev.refund("P2", 5))
    h.state.open_breaches.append({"milestone": "SHIPMENT", "due_at": 1, "detected_at": 2})
    h.state.closed_breaches.append(
        {"milestone": "ACCEPTANCE", "due_at": 1, "detected_at": 2, "met_at": 3, "late": True}
    )
    data = h.state.to_bytes()
    back = OrderState.from_bytes(data)
    assert back == h.state
    assert back.to_bytes() == data
    assert OrderState.from_bytes(OrderState("x").to_bytes()) == OrderState("x")
    with pytest.raises(ValueError):
        OrderState.from_bytes(b"[99]")


def test_allocation_messages_round_trip_through_dicts():
    msgs = [
        AllocationRequest("SO-1", "L1", "SKU-A", None, 3, T0, T0 + 1, 1, "e1"),
        AllocationRelease("SO-1", "L1", "SKU-A", "W1", 2, T0 + 2, 2, "e2"),
        StockIssue("SO-1", "L1", "SKU-A", "W2", 1, "W1", "S1", T0 + 3, 3, "e3"),
        AllocationResult("SO-1", "L1", "SKU-A", "W1", 1, 0, None, 3, "R1", T0 + 4),
    ]
    for m in msgs:
        d = m.to_dict()
        json.dumps(d)
        assert message_from_dict(d) == m
    with pytest.raises(ValueError):
        message_from_dict({"type": "Nope"})
    e = BusinessException("OVERPAYMENT", "SO-1", "d", "e1", T0, None)
    assert BusinessException.from_dict(e.to_dict()) == e
