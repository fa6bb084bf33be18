"""Ledger events: the physical and planning facts about a warehouse's stock (SPEC §3, §5).

- `receive`: goods in (on-hand up; closes the expected supply its `source_doc` names);
- `adjust`: signed on-hand correction (NEGATIVE_ATP when a decrease leaves ATP below zero);
- `rebase`: a physical count replaces on-hand (stale counts are ignored);
- `set_safety_stock`: the planner's buffer, excluded from ATP;
- `expect_supply`: inbound supply (PO/ASN/transfer) by `supply_id`, for promise dates.

Only these and `tables.reservations.issue` ever change on-hand. Backorder fills and promise
dates follow in `tables.inventory.settle`, for every warehouse a change touched.
"""

from __future__ import annotations

from tables.ledger import Change, InventoryCode


def receive(ch: Change, wid: str, quantity: int, source_doc: str | None = None) -> None:
    w = ch.warehouse(wid)
    w.on_hand += quantity
    if source_doc is not None:
        # the expected supply it names arrived (short or not, wherever): no longer due
        _withdraw(ch, source_doc)


def _withdraw(ch: Change, supply_id: str, keep: str | None = None) -> None:
    """Remove the expected supply `supply_id` from every warehouse but `keep`."""
    for wid, w in ch.state.warehouses.items():
        if wid != keep and supply_id in w.supply:
            ch.warehouse(wid)
            del w.supply[supply_id]
            ch.supply_changed.add(wid)


def adjust(ch: Change, wid: str, delta: int, reason: str) -> None:
    w = ch.warehouse(wid)
    atp_before = w.on_hand - w.reserved - w.safety_stock
    w.on_hand += delta
    if delta < 0:
        ch.check_negative(wid, w, atp_before, f"adjustment {delta} ({reason})")


def rebase(ch: Change, wid: str, on_hand: int, as_of: int) -> bool:
    """Rebase on-hand to a physical count; a count older than the last one applied is
    ignored (STALE_SNAPSHOT). Returns whether it was applied."""
    w = ch.warehouse(wid)
    if w.counted_at is not None and as_of < w.counted_at:
        ch.raise_(InventoryCode.STALE_SNAPSHOT,
                  f"count of {on_hand} at {wid} as of {as_of} is older than the count as of "
                  f"{w.counted_at}: ignored")
        return False
    atp_before = w.on_hand - w.reserved - w.safety_stock
    w.counted_at = as_of
    w.on_hand = on_hand
    ch.check_negative(wid, w, atp_before, f"count of {on_hand}")
    return True


def set_safety_stock(ch: Change, wid: str, quantity: int) -> None:
    ch.warehouse(wid).safety_stock = quantity


def expect_supply(ch: Change, wid: str, supply_id: str, quantity: int, expected_at: int) -> None:
    """Upsert the expected supply `supply_id` at `wid` (quantity 0 withdraws it). A supply id
    is one inbound document for the SKU: announcing it at another warehouse moves it."""
    w = ch.warehouse(wid)
    _withdraw(ch, supply_id, keep=wid)
    supply = w.supply
    if quantity == 0:
        if supply.pop(supply_id, None) is None:
            return
    else:
        cur = supply.get(supply_id)
        if cur is not None and cur[0] == quantity and cur[1] == expected_at:
            return
        supply[supply_id] = [quantity, expected_at]
    ch.supply_changed.add(wid)
