"""Header status (SPEC §4), derived from the line buckets, and milestone detection."""

from __future__ import annotations

from tables.order_state import OrderState


class OrderStatus:
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    BACKORDERED = "BACKORDERED"
    PARTIALLY_ALLOCATED = "PARTIALLY_ALLOCATED"
    ALLOCATED = "ALLOCATED"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    INVOICED = "INVOICED"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    CLOSED = "CLOSED"
    ON_HOLD = "ON_HOLD"
    CANCELLED = "CANCELLED"


def is_cancelled(state: OrderState) -> bool:
    """Every line fully cancelled (and something was cancelled: an order whose lines are
    all zero-quantity is not "cancelled")."""
    any_cancelled = False
    for ln in state.lines.values():
        if ln.cancelled < ln.ordered:
            return False
        if ln.cancelled:
            any_cancelled = True
    return any_cancelled


def fully_invoiced(state: OrderState) -> bool:
    """Every line's open quantity (ordered - cancelled) invoiced (hence shipped)."""
    for ln in state.lines.values():
        if ln.invoiced < ln.ordered - ln.cancelled:
            return False
    return True


def derive_status(state: OrderState) -> str | None:
    """The SPEC §4 header status: the first rule that holds. None before OrderPlaced."""
    if state.placed_at is None:
        return None
    if is_cancelled(state):
        return OrderStatus.CANCELLED
    if state.holds:
        return OrderStatus.ON_HOLD
    if state.accepted_at is None:
        return OrderStatus.SUBMITTED
    all_shipped = all_invoiced = all_delivered = all_allocated = True
    any_shipped = any_allocated = any_backordered = False
    for ln in state.lines.values():
        open_ = ln.ordered - ln.cancelled
        if ln.shipped < open_:
            all_shipped = False
        if ln.invoiced < open_:
            all_invoiced = False
        if ln.delivered < open_:
            all_delivered = False
        if ln.allocated + ln.shipped < open_:
            all_allocated = False
        if ln.shipped:
            any_shipped = True
        if ln.allocated:
            any_allocated = True
        if ln.backordered:
            any_backordered = True
    if all_shipped:
        net_paid = state.paid_minor - state.refunded_minor
        if all_invoiced and net_paid >= state.invoiced_minor:
            return OrderStatus.CLOSED
        if net_paid > 0:
            return OrderStatus.PARTIALLY_PAID
        if all_invoiced:
            return OrderStatus.INVOICED
        if all_delivered:
            return OrderStatus.DELIVERED
        return OrderStatus.SHIPPED
    if any_shipped:
        return OrderStatus.PARTIALLY_SHIPPED
    if all_allocated:
        return OrderStatus.ALLOCATED
    if any_allocated:
        return OrderStatus.PARTIALLY_ALLOCATED
    if any_backordered:
        return OrderStatus.BACKORDERED
    return OrderStatus.ACCEPTED


def update_milestones(state: OrderState, at: int) -> bool:
    """Set every milestone first reached now to `at`; True when one was set.

    Milestones are sticky: once set they never move or clear (docs/order-model.md).
    """
    if state.placed_at is None:
        return False
    open_total = 0
    all_alloc = all_ship = all_deliv = all_inv = True
    for ln in state.lines.values():
        open_ = ln.ordered - ln.cancelled
        open_total += open_
        if ln.shipped < open_:
            all_ship = False
        if ln.allocated + ln.shipped < open_:
            all_alloc = False
        if ln.delivered < open_:
            all_deliv = False
        if ln.invoiced < open_:
            all_inv = False
    changed = False
    if open_total > 0:
        if all_alloc and state.allocated_at is None and state.accepted_at is not None:
            state.allocated_at = at
            changed = True
        if all_ship and state.shipped_at is None:
            state.shipped_at = at
            changed = True
        if all_deliv and state.delivered_at is None:
            state.delivered_at = at
            changed = True
        if all_inv and state.invoiced_at is None:
            state.invoiced_at = at
            changed = True
        if (
            all_inv
            and state.paid_at is None
            and state.paid_minor - state.refunded_minor >= state.invoiced_minor
        ):
            state.paid_at = at
            changed = True
    if state.closed_at is None or state.cancelled_at is None:
        status = derive_status(state)
        if status == OrderStatus.CLOSED and state.closed_at is None:
            state.closed_at = at
            changed = True
        elif status == OrderStatus.CANCELLED and state.cancelled_at is None:
            state.cancelled_at = at
            changed = True
    return changed
