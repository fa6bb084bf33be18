"""Reservations and backorders of order lines (SPEC §5; the allocation contract's record rules).

- `choose_warehouse`: highest ATP, ties lowest id (for a line that names none);
- `reserve`: reserve `min(q, max(atp, 0))` at the line's warehouse, backorder the rest there;
- `release`: drop quantity of a line, backordered first, then reserved;
- `issue`: stock left a warehouse for a line (on-hand down there; the line's reservation
  consumed where it is held, reserved first, then backordered);
- `fill_backorders`: give ATP to the warehouse's backorders, strictly first come first served.

All mutate the `SkuState` behind a `Change` and record what they touched in it.
"""

from __future__ import annotations

from tables.ledger import Change, LineAlloc, SkuState, dequeue, enqueue


def choose_warehouse(state: SkuState) -> str | None:
    """The warehouse with the highest ATP (ties: lowest id); None if the SKU has none."""
    best = None
    best_atp = 0
    for wid, w in state.warehouses.items():
        atp = w.on_hand - w.reserved - w.safety_stock
        if best is None or atp > best_atp or (atp == best_atp and wid < best):
            best, best_atp = wid, atp
    return best


def reserve(ch: Change, rec: LineAlloc, quantity: int) -> None:
    """Reserve `min(quantity, max(atp, 0))` at the line's warehouse; backorder the rest there
    (queued FCFS). A line without a warehouse (the SKU has none yet) is backordered unassigned."""
    if quantity <= 0:
        return
    ch.touch(rec)
    wid = rec.warehouse_id
    if wid is None:
        if not rec.backordered:
            enqueue(ch.state.unassigned, rec)
        rec.backordered += quantity
        return
    w = ch.warehouse(wid)
    atp = w.on_hand - w.reserved - w.safety_stock
    take = quantity if quantity < atp else (atp if atp > 0 else 0)
    if take:
        rec.reserved += take
        w.reserved += take
    rest = quantity - take
    if rest:
        if not rec.backordered:
            enqueue(w.queue, rec)
        rec.backordered += rest
        w.backordered += rest


def _unbackorder(ch: Change, rec: LineAlloc, quantity: int) -> None:
    """Take `quantity` (<= rec.backordered) off the line's backorder."""
    rec.backordered -= quantity
    wid = rec.warehouse_id
    if wid is None:
        if not rec.backordered:
            dequeue(ch.state.unassigned, rec)
        return
    w = ch.warehouse(wid)
    w.backordered -= quantity
    if not rec.backordered:
        dequeue(w.queue, rec)


def _unreserve(ch: Change, rec: LineAlloc, quantity: int) -> None:
    """Take `quantity` (<= rec.reserved) off the line's reservation (ATP rises there)."""
    rec.reserved -= quantity
    ch.warehouse(rec.warehouse_id).reserved -= quantity  # reserved > 0: has a warehouse


def release(ch: Change, rec: LineAlloc, quantity: int) -> int:
    """Remove `quantity` from the line: backordered first, then reserved, never below zero.
    Returns the part that was not there (0 when the record covered it)."""
    ch.touch(rec)
    t = quantity if quantity < rec.backordered else rec.backordered
    if t:
        _unbackorder(ch, rec, t)
    rest = quantity - t
    t = rest if rest < rec.reserved else rec.reserved
    if t:
        _unreserve(ch, rec, t)
    return rest - t


def issue(ch: Change, rec: LineAlloc, warehouse_id: str, quantity: int) -> None:
    """`quantity` physically left `warehouse_id` for the line: on-hand there goes down by it;
    the line's record loses `min(quantity, its total)`, reserved first then backordered, at
    its own warehouse (so shipping from another warehouse releases the reservation there)."""
    state = ch.state
    w = ch.warehouse(warehouse_id, expected=warehouse_id in state.warehouses)
    atp_before = w.on_hand - w.reserved - w.safety_stock
    w.on_hand -= quantity
    t = quantity if quantity < rec.reserved else rec.reserved
    own = rec.warehouse_id == warehouse_id
    if t:
        if own:  # consumed where it ships: on-hand and reservation go down together
            rec.reserved -= t
            w.reserved -= t
        else:
            _unreserve(ch, rec, t)
        ch.touch(rec)
    rest = quantity - t
    t = rest if rest < rec.backordered else rec.backordered
    if t:
        _unbackorder(ch, rec, t)
        ch.touch(rec)
    ch.check_negative(warehouse_id, w, atp_before,
                      f"shipment of {quantity} for {rec.order_id}/{rec.line_id}")


def fill_backorders(ch: Change, wid: str) -> None:
    """While the warehouse has ATP, fill its backorders in FCFS order (acceptance time, then
    arrival): the oldest line gets `min(its backorder, atp)` before any younger one gets any."""
    w = ch.state.warehouses[wid]
    atp = w.on_hand - w.reserved - w.safety_stock
    queue = w.queue
    if atp <= 0 or not queue:
        return
    n = 0
    for rec in queue:
        b = rec.backordered
        t = b if b < atp else atp
        rec.backordered = b - t
        rec.reserved += t
        w.backordered -= t
        w.reserved += t
        ch.touch(rec)
        atp -= t
        if rec.backordered:
            break
        n += 1
        if not atp:
            break
    if n:
        del queue[:n]
