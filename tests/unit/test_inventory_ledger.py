"""Example tests of the inventory ledger, with exact numbers (docs/inventory-model.md)."""

from __future__ import annotations

import pytest

from streams.contracts.flat import to_record
from tables.allocation import AllocationRequest, AllocationResult
from tables.exceptions import Code
from tables.inventory import (
    INVENTORY_EVENT_TYPES,
    InvalidEvent,
    InventoryCode,
    SkuState,
    apply_inventory_event,
    apply_order_message,
    atp_view,
    warehouse_view,
)
from tables.ledger import MAX_DONE_LINES, MAX_SEEN_EVENT_IDS
from tests.unit.test_inventory_support import DAY, SKU, T0, Inv, Ledger, result_tuple


def last(lg: Ledger) -> tuple:
    return result_tuple(lg.results[-1])


# -- the stories of the brief ------------------------------------------------------------------
def test_receipt_then_order_then_shipment():
    lg = Ledger()
    out = lg.receive("W1", 10)
    assert [a.to_dict() for a in out.atp] == [{
        "sku": SKU, "warehouse_id": "W1", "on_hand": 10, "reserved": 0, "backordered": 0,
        "safety_stock": 0, "atp": 10, "network_atp": 10, "cause_event_id": "i1",
        "as_of": T0 + 1000,
    }]
    assert out.results == [] and out.exceptions == []

    out = lg.request("SO-1", "L1", 4, "W1")
    assert [result_tuple(r) for r in out.results] == [("SO-1", "L1", "W1", 4, 0, None, 1)]
    r = out.results[0]
    assert r.sku == SKU and r.result_id == f"{SKU}:1" and r.occurred_at == T0 + 1000
    assert lg.wh("W1") == (10, 4, 0, 0, 6)
    assert out.atp[0].cause_event_id == "o1" and out.atp[0].network_atp == 6

    out = lg.issue("SO-1", "L1", 4, "W1", "W1")
    assert [result_tuple(r) for r in out.results] == [("SO-1", "L1", "W1", 0, 0, None, 2)]
    assert lg.wh("W1") == (6, 0, 0, 0, 6)  # on-hand and reservation down together
    assert [(a.on_hand, a.reserved, a.atp) for a in out.atp] == [(6, 0, 6)]
    assert lg.raised == []


def test_two_orders_compete_then_a_receipt_fills_the_backorder():
    lg = Ledger()
    lg.receive("W1", 10)
    lg.request("SO-1", "L1", 8, "W1", accepted_at=T0 + 10)
    out = lg.request("SO-2", "L1", 5, "W1", accepted_at=T0 + 20)
    assert [result_tuple(r) for r in out.results] == [("SO-2", "L1", "W1", 2, 3, None, 1)]
    assert lg.wh("W1") == (10, 10, 3, 0, 0)

    out = lg.receive("W1", 2)  # not enough: partial fill, FCFS
    assert [result_tuple(r) for r in out.results] == [("SO-2", "L1", "W1", 4, 1, None, 1)]
    assert lg.wh("W1") == (12, 12, 1, 0, 0)
    out = lg.receive("W1", 6)
    assert [result_tuple(r) for r in out.results] == [("SO-2", "L1", "W1", 5, 0, None, 1)]
    assert lg.wh("W1") == (18, 13, 0, 0, 5)
    assert [(a.reserved, a.backordered, a.atp) for a in out.atp] == [(13, 0, 5)]


def test_backorders_are_filled_by_acceptance_time_not_arrival():
    lg = Ledger()
    lg.receive("W1", 0)
    lg.request("SO-late", "L1", 3, "W1", accepted_at=T0 + 500)
    lg.request("SO-early", "L1", 3, "W1", accepted_at=T0 + 100)  # arrives later, accepted first
    lg.request("SO-early", "L2", 3, "W1", accepted_at=T0 + 100)  # same order: arrival decides
    out = lg.receive("W1", 4)
    assert [result_tuple(r) for r in out.results] == [
        ("SO-early", "L1", "W1", 3, 0, None, 1),
        ("SO-early", "L2", "W1", 1, 2, None, 1),
    ]
    assert [r.key for r in lg.state.warehouses["W1"].queue] == [
        ("SO-early", "L2"), ("SO-late", "L1")]


def test_cancel_releases_backordered_first_then_reserved_and_refills():
    lg = Ledger()
    lg.receive("W1", 5)
    lg.request("SO-1", "L1", 8, "W1")  # 5 reserved, 3 backordered
    lg.request("SO-2", "L1", 4, "W1")  # 4 backordered
    assert lg.wh("W1") == (5, 5, 7, 0, 0)

    out = lg.release("SO-1", "L1", 2)  # from the backorder: nothing freed
    assert [result_tuple(r) for r in out.results] == [("SO-1", "L1", "W1", 5, 1, None, 2)]
    assert lg.wh("W1") == (5, 5, 5, 0, 0)

    out = lg.release("SO-1", "L1", 4)  # 1 backordered + 3 reserved: SO-2 gets the 3
    assert [result_tuple(r) for r in out.results] == [
        ("SO-1", "L1", "W1", 2, 0, None, 3),
        ("SO-2", "L1", "W1", 3, 1, None, 1),
    ]
    assert lg.wh("W1") == (5, 5, 1, 0, 0)
    assert [(a.reserved, a.backordered) for a in out.atp] == [(5, 1)]

    out = lg.release("SO-1", "L1", 2)  # the rest of SO-1
    assert [result_tuple(r) for r in out.results] == [
        ("SO-1", "L1", "W1", 0, 0, None, 4),
        ("SO-2", "L1", "W1", 4, 0, None, 1),
    ]
    assert lg.wh("W1") == (5, 4, 0, 0, 1)
    assert lg.raised == []

    out = lg.release("SO-2", "L1", 9)  # more than it holds: released what it had
    assert last(lg) == ("SO-2", "L1", "W1", 0, 0, None, 2)
    assert [e.code for e in out.exceptions] == [InventoryCode.RELEASE_EXCEEDS_ALLOCATION]
    assert out.exceptions[0].order_id == "SO-2" and out.exceptions[0].sku == SKU
    assert lg.wh("W1") == (5, 0, 0, 0, 5)


def test_ship_from_another_warehouse_releases_the_reservation_there():
    lg = Ledger()
    lg.receive("W1", 5)
    lg.receive("W2", 10)
    lg.request("SO-1", "L1", 5, "W1")
    lg.request("SO-2", "L1", 3, "W1")  # backordered at W1
    assert lg.wh("W1") == (5, 5, 3, 0, 0)

    out = lg.issue("SO-1", "L1", 5, "W2", "W1")
    assert [result_tuple(r) for r in out.results] == [
        ("SO-1", "L1", "W1", 0, 0, None, 2),
        ("SO-2", "L1", "W1", 3, 0, None, 1),  # W1's freed stock fills the backorder
    ]
    assert lg.wh("W1") == (5, 3, 0, 0, 2)  # on-hand untouched where nothing left
    assert lg.wh("W2") == (5, 0, 0, 0, 5)
    assert sorted((a.warehouse_id, a.on_hand, a.reserved, a.atp, a.network_atp)
                  for a in out.atp) == [("W1", 5, 3, 2, 7), ("W2", 5, 0, 5, 7)]
    assert lg.raised == []


def test_shipping_unreserved_stock_from_another_warehouse_raises_negative_atp():
    lg = Ledger()
    lg.receive("W1", 5)
    lg.receive("W2", 2)
    lg.request("SO-1", "L1", 5, "W1")
    lg.request("SO-2", "L1", 2, "W2")
    out = lg.issue("SO-1", "L1", 3, "W2", "W1")
    assert lg.wh("W2") == (-1, 2, 0, 0, -3)
    assert lg.wh("W1") == (5, 2, 0, 0, 3)
    assert [e.code for e in out.exceptions] == [InventoryCode.NEGATIVE_ATP]
    assert last(lg) == ("SO-1", "L1", "W1", 2, 0, None, 2)


def test_line_without_warehouse_goes_to_the_best_atp_warehouse_ties_lowest_id():
    lg = Ledger()
    lg.receive("W2", 7)
    lg.receive("W3", 7)
    lg.receive("W1", 3)
    out = lg.request("SO-1", "L1", 10)  # W2 and W3 tie at 7: W2
    assert [result_tuple(r) for r in out.results] == [("SO-1", "L1", "W2", 7, 3, None, 1)]
    assert [a.warehouse_id for a in out.atp] == ["W2"]
    out = lg.request("SO-2", "L1", 1)  # now W3 has the most
    assert last(lg) == ("SO-2", "L1", "W3", 1, 0, None, 1)
    out = lg.request("SO-1", "L1", 2, "W1")  # a later request stays at the line's warehouse
    assert last(lg) == ("SO-1", "L1", "W2", 7, 5, None, 2)


def test_line_without_warehouse_with_all_atp_negative_backorders_at_the_highest():
    lg = Ledger()
    lg.event(lg.inv.safety("W1", 5))
    lg.event(lg.inv.safety("W2", 2))
    out = lg.request("SO-1", "L1", 4)
    assert last(lg) == ("SO-1", "L1", "W2", 0, 4, None, 1)
    assert out.exceptions == []


def test_no_warehouse_at_all_backorders_unassigned_until_the_first_warehouse():
    lg = Ledger()
    out = lg.request("SO-1", "L1", 4)
    assert [result_tuple(r) for r in out.results] == [("SO-1", "L1", None, 0, 4, None, 1)]
    assert out.atp == []
    assert atp_view(lg.state)["backordered"] == 4
    lg.request("SO-2", "L1", 2)
    out = lg.receive("W1", 5)  # the SKU's first warehouse takes both, FCFS
    assert [result_tuple(r) for r in out.results] == [
        ("SO-1", "L1", "W1", 4, 0, None, 1),
        ("SO-2", "L1", "W1", 1, 1, None, 1),
    ]
    assert lg.wh("W1") == (5, 5, 1, 0, 0)


def test_unknown_warehouse_is_created_and_flagged():
    lg = Ledger()
    lg.receive("W1", 5)
    out = lg.request("SO-1", "L1", 2, "W9")
    assert [e.code for e in out.exceptions] == [InventoryCode.UNKNOWN_WAREHOUSE]
    assert last(lg) == ("SO-1", "L1", "W9", 0, 2, None, 1)
    assert lg.wh("W9") == (0, 0, 2, 0, 0)
    out = lg.issue("SO-2", "L1", 1, "W8")  # shipped before acceptance from an unknown one
    assert [e.code for e in out.exceptions] == [InventoryCode.UNKNOWN_WAREHOUSE,
                                                InventoryCode.NEGATIVE_ATP]
    assert out.results == []  # never requested: not answered
    assert lg.wh("W8") == (-1, 0, 0, 0, -1)


def test_snapshot_rebases_on_hand_and_a_stale_count_is_ignored():
    lg = Ledger()
    lg.receive("W1", 10)
    lg.request("SO-1", "L1", 12, "W1")  # 10 reserved, 2 backordered
    out = lg.event(lg.inv.snapshot("W1", 15, as_of=T0 + 50_000))
    assert lg.wh("W1") == (15, 12, 0, 0, 3)
    assert [result_tuple(r) for r in out.results] == [("SO-1", "L1", "W1", 12, 0, None, 1)]
    assert [(a.on_hand, a.reserved, a.backordered, a.atp) for a in out.atp] == [(15, 12, 0, 3)]
    out = lg.event(lg.inv.snapshot("W1", 14, as_of=T0 + 40_000))
    assert [e.code for e in out.exceptions] == [InventoryCode.STALE_SNAPSHOT]
    assert out.atp == [] and lg.wh("W1") == (15, 12, 0, 0, 3)
    out = lg.event(lg.inv.snapshot("W1", 11, as_of=T0 + 60_000))  # count below reservations
    assert lg.wh("W1") == (11, 12, 0, 0, -1)
    assert [e.code for e in out.exceptions] == [InventoryCode.NEGATIVE_ATP]
    assert lg.state.lines[("SO-1", "L1")].reserved == 12  # reservations are kept


def test_negative_adjustment_raises_negative_atp():
    lg = Ledger()
    lg.receive("W1", 10)
    lg.event(lg.inv.safety("W1", 2))
    lg.request("SO-1", "L1", 8, "W1")
    assert lg.wh("W1") == (10, 8, 0, 2, 0)
    out = lg.event(lg.inv.adjusted("W1", -3, "SHRINK"))
    assert lg.wh("W1") == (7, 8, 0, 2, -3)
    assert [e.code for e in out.exceptions] == [InventoryCode.NEGATIVE_ATP]
    e = out.exceptions[0]
    assert (e.order_id, e.sku, e.cause_event_id) == (None, SKU, "i3")
    assert "atp -3" in e.detail
    to_record("exceptions", e.to_dict())
    out = lg.event(lg.inv.adjusted("W1", 1, "COUNT_CORRECTION"))  # up, still negative: no new
    assert out.exceptions == [] and lg.wh("W1")[4] == -2
    out = lg.request("SO-2", "L1", 1, "W1")  # nothing to reserve while ATP is negative
    assert last(lg) == ("SO-2", "L1", "W1", 0, 1, None, 1)
    out = lg.event(lg.inv.adjusted("W1", 2, "RETURN_TO_STOCK"))  # back to 0: still no fill
    assert out.results == [] and lg.wh("W1") == (10, 8, 1, 2, 0)
    out = lg.event(lg.inv.adjusted("W1", 1, "RETURN_TO_STOCK"))
    assert [result_tuple(r) for r in out.results] == [("SO-2", "L1", "W1", 1, 0, None, 1)]


def test_safety_stock_blocks_promising_and_lowering_it_fills():
    lg = Ledger()
    lg.receive("W1", 10)
    out = lg.event(lg.inv.safety("W1", 12))  # raising it is a plan, not a loss: no exception
    assert lg.wh("W1") == (10, 0, 0, 12, -2) and out.exceptions == []
    lg.request("SO-1", "L1", 3, "W1")
    assert last(lg) == ("SO-1", "L1", "W1", 0, 3, None, 1)
    out = lg.event(lg.inv.safety("W1", 8))
    assert [result_tuple(r) for r in out.results] == [("SO-1", "L1", "W1", 2, 1, None, 1)]
    assert lg.wh("W1") == (10, 2, 1, 8, 0)


def test_expected_supply_gives_promise_dates_fifo_cumulatively():
    lg = Ledger()
    lg.receive("W1", 2)
    lg.request("SO-1", "L1", 5, "W1")  # 2 reserved, 3 backordered
    lg.request("SO-2", "L1", 4, "W1")  # 4 backordered
    d1, d2 = T0 + 3 * DAY, T0 + 5 * DAY
    out = lg.event(lg.inv.supply("W1", "PO-2", 7, d2))
    assert [result_tuple(r) for r in out.results] == [
        ("SO-1", "L1", "W1", 2, 3, d2, 1),
        ("SO-2", "L1", "W1", 0, 4, d2, 1),
    ]
    assert out.atp == []  # supply is not part of AtpChanged
    out = lg.event(lg.inv.supply("W1", "PO-1", 3, d1))  # earlier and just enough for SO-1
    assert [result_tuple(r) for r in out.results] == [("SO-1", "L1", "W1", 2, 3, d1, 1)]
    assert lg.line("SO-2") == ("W1", 0, 4, d2)
    out = lg.event(lg.inv.supply("W1", "PO-2", 3, d2))  # PO-2 cut: SO-2 (needs 3+4) uncovered
    assert [result_tuple(r) for r in out.results] == [("SO-2", "L1", "W1", 0, 4, None, 1)]
    # PO-1 arrives short: it is closed, SO-1 is partly filled and promised PO-2's date
    out = lg.event(lg.inv.received("W1", 2, source_doc="PO-1"))
    assert [result_tuple(r) for r in out.results] == [("SO-1", "L1", "W1", 4, 1, d2, 1)]
    assert list(lg.state.warehouses["W1"].supply) == ["PO-2"]
    view = warehouse_view(lg.state, "W1")
    assert view["expected_supply"] == [{"supply_id": "PO-2", "quantity": 3, "expected_at": d2}]
    assert [(b["order_id"], b["quantity"], b["promised_at"]) for b in view["backorders"]] == [
        ("SO-1", 1, d2), ("SO-2", 4, None)]
    out = lg.event(lg.inv.supply("W1", "PO-2", 0, d2))  # withdrawn
    assert [result_tuple(r) for r in out.results] == [("SO-1", "L1", "W1", 4, 1, None, 1)]


def test_promise_covers_a_negative_atp_first():
    lg = Ledger()
    lg.receive("W1", 4)
    lg.request("SO-1", "L1", 4, "W1")
    lg.event(lg.inv.adjusted("W1", -2))  # atp -2
    lg.request("SO-2", "L1", 1, "W1")
    d = T0 + 2 * DAY
    lg.event(lg.inv.supply("W1", "PO-1", 2, d))
    assert lg.line("SO-2") == ("W1", 0, 1, None)  # 2 go to the deficit
    lg.event(lg.inv.supply("W1", "PO-1", 3, d))
    assert lg.line("SO-2") == ("W1", 0, 1, d)


def test_supply_moved_to_another_warehouse():
    lg = Ledger()
    lg.event(lg.inv.supply("W1", "PO-1", 5, T0 + DAY))
    lg.event(lg.inv.supply("W2", "PO-1", 5, T0 + DAY))
    assert lg.state.warehouses["W1"].supply == {}
    assert lg.state.warehouses["W2"].supply == {"PO-1": [5, T0 + DAY]}


# -- idempotency -----------------------------------------------------------------------------
def test_duplicate_ledger_event_and_message_are_no_ops():
    lg = Ledger()
    ev = lg.inv.received("W1", 5)
    lg.event(ev)
    before = lg.state.to_bytes()
    out = lg.event(dict(ev))
    assert out.duplicate and not out.changed and out.atp == [] and out.results == []
    assert lg.state.to_bytes() == before
    msg = lg.msgs.request("SO-1", "L1", 2, "W1")
    lg.message(msg)
    before = lg.state.to_bytes()
    out = lg.message(msg)
    assert out.duplicate and not out.changed and lg.state.to_bytes() == before
    out = lg.message(msg.to_dict())  # the dict form too
    assert out.duplicate


def test_seen_window_is_bounded():
    lg = Ledger(check=False)
    for _ in range(MAX_SEEN_EVENT_IDS + 10):
        lg.receive("W1", 1)
    assert len(lg.state.seen) == MAX_SEEN_EVENT_IDS
    assert "i1" not in lg.state.seen and f"i{MAX_SEEN_EVENT_IDS + 10}" in lg.state.seen


def test_finished_lines_are_kept_in_a_bounded_window():
    lg = Ledger(check=False)
    lg.receive("W1", 10_000)
    n = MAX_DONE_LINES + 5
    for i in range(n):
        lg.request(f"SO-{i}", "L1", 1, "W1")
        lg.issue(f"SO-{i}", "L1", 1, "W1", "W1")
    lg.request("SO-open", "L1", 1, "W1")
    s = lg.state
    assert len(s.done) == MAX_DONE_LINES and len(s.lines) == MAX_DONE_LINES + 1
    assert ("SO-0", "L1") not in s.lines and (f"SO-{n - 1}", "L1") in s.done
    # a late message of a line still in the window is answered from its record
    out = lg.issue(f"SO-{n - 1}", "L1", 1, "W2", "W1")
    assert last(lg) == (f"SO-{n - 1}", "L1", "W1", 0, 0, None, 3)
    assert out.atp[0].warehouse_id == "W2"
    # a release for a line the ledger does not know (evicted, or a bug) is answered, flagged
    out = lg.release("SO-0", "L1", 1)
    assert [e.code for e in out.exceptions] == [InventoryCode.UNKNOWN_ALLOCATION]
    assert last(lg) == ("SO-0", "L1", None, 0, 0, None, 3)
    from tests.unit.test_inventory_support import check_ledger
    check_ledger(s)


def test_issue_before_acceptance_moves_on_hand_only_and_is_not_answered():
    lg = Ledger()
    lg.receive("W1", 5)
    out = lg.issue("SO-1", "L1", 2, "W1", None)
    assert out.results == [] and lg.wh("W1") == (3, 0, 0, 0, 3)
    out = lg.issue("SO-1", "L1", 2, "W1", None)
    assert lg.wh("W1") == (1, 0, 0, 0, 1)
    out = lg.request("SO-1", "L1", 3)  # acceptance requests the unshipped rest, seq 3
    assert last(lg) == ("SO-1", "L1", "W1", 1, 2, None, 3)


# -- input problems --------------------------------------------------------------------------
def test_invalid_quantities_are_flagged_and_ignored():
    lg = Ledger()
    lg.receive("W1", 5)
    for ev in (lg.inv.received("W1", -1), lg.inv.snapshot("W1", -2), lg.inv.safety("W1", -3),
               lg.inv.supply("W1", "PO", -4, T0)):
        out = lg.event(ev)
        assert [e.code for e in out.exceptions] == [Code.INVALID_QUANTITY]
        assert out.changed and out.atp == []
    assert lg.wh("W1") == (5, 0, 0, 0, 5)
    out = lg.request("SO-1", "L1", -2, "W1")
    assert [e.code for e in out.exceptions] == [Code.INVALID_QUANTITY]
    assert last(lg) == ("SO-1", "L1", "W1", 0, 0, None, 1)  # still acknowledged


def test_unknown_event_type_and_invalid_events():
    s = SkuState(SKU)
    inv = Inv()
    out = apply_inventory_event(s, inv.make("InventoryTeleported", warehouse_id="W1"))
    assert [e.code for e in out.exceptions] == [Code.UNKNOWN_EVENT_TYPE] and out.changed
    before = s.to_bytes()
    bad = [
        {"event_type": "InventoryReceived", "occurred_at": T0},
        inv.make("InventoryReceived", warehouse_id="W1", quantity="3", source_doc="x"),
        inv.make("InventoryReceived", warehouse_id="W1"),
        inv.make("InventoryReceived", warehouse_id=None, quantity=1, source_doc="x"),
        {**inv.received("W1", 1), "sku": "OTHER"},
    ]
    for ev in bad:
        with pytest.raises(InvalidEvent):
            apply_inventory_event(s, ev)
        assert s.to_bytes() == before
    req = AllocationRequest("SO-1", "L1", "OTHER", None, 1, T0, T0, 1, "c")
    for msg in (req, {"type": "Nope"}, {"type": "AllocationRequest"},
                AllocationResult("SO-1", "L1", SKU, None, 0, 0, None, 1, "r", T0),
                {**req.to_dict(), "sku": SKU, "quantity": None},
                {"type": "StockIssue", "order_id": "SO-1", "line_id": "L1", "sku": SKU,
                 "warehouse_id": None, "quantity": 1, "reserved_warehouse": None,
                 "shipment_id": "S", "issued_at": T0, "seq": 1, "cause_event_id": "c"}):
        with pytest.raises(InvalidEvent):
            apply_order_message(s, msg)
        assert s.to_bytes() == before


def test_every_inventory_event_type_is_handled():
    assert INVENTORY_EVENT_TYPES == {"InventoryReceived", "InventoryAdjusted",
                                     "InventorySnapshot", "SafetyStockSet", "SupplyExpected"}


# -- outputs and bytes -----------------------------------------------------------------------
def test_outputs_validate_against_the_schemas_and_inputs_against_the_contract():
    lg = Ledger()
    events = [lg.inv.safety("W1", 1), lg.inv.received("W1", 5), lg.inv.adjusted("W1", -9),
              lg.inv.snapshot("W1", 3), lg.inv.supply("W1", "PO", 4, T0 + DAY)]
    for ev in events:
        to_record("inventory", ev)
        lg.event(ev)
    lg.request("SO-1", "L1", 3, "W1")
    assert lg.atp and lg.raised
    for a in lg.atp:
        assert to_record("atp", a.to_dict()) == a.to_dict()
    for e in lg.raised:
        to_record("exceptions", e.to_dict())
    for r in lg.results:
        assert AllocationResult.from_dict(r.to_dict()) == r


def test_bytes_round_trip_and_version():
    lg = Ledger()
    lg.receive("W1", 3)
    lg.request("SO-1", "L1", 5, "W1")
    lg.event(lg.inv.supply("W1", "PO", 9, T0 + DAY))
    b = lg.state.to_bytes()
    assert b.startswith(b"[1,")
    again = SkuState.from_bytes(b)
    assert again.to_bytes() == b and SkuState.from_bytes(b.decode()).to_bytes() == b
    # the decoded state behaves like the original
    out1 = apply_inventory_event(lg.state, lg.inv.received("W1", 1))
    lg.inv.n -= 1
    out2 = apply_inventory_event(again, lg.inv.received("W1", 1))
    assert out1 == out2 and lg.state.to_bytes() == again.to_bytes()
    with pytest.raises(ValueError):
        SkuState.from_bytes(b"[2" + b[2:])


def test_atp_view():
    lg = Ledger()
    lg.receive("W2", 4)
    lg.receive("W1", 6)
    lg.event(lg.inv.safety("W1", 1))
    lg.request("SO-1", "L1", 7, "W2")
    v = atp_view(lg.state)
    assert v["network_atp"] == 5 and v["on_hand"] == 10 and v["backordered"] == 3
    assert [(w["warehouse_id"], w["atp"]) for w in v["warehouses"]] == [("W1", 5), ("W2", 0)]
    assert warehouse_view(lg.state, "W3") is None
