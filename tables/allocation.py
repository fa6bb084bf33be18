"""The allocation contract between an order and the inventory (ATP) side (SPEC §5).

The order side emits, keyed by `sku` (the inventory side is partitioned by SKU):

- `AllocationRequest`  quantity the line needs reserved (OrderAccepted, line increases);
- `AllocationRelease`  unshipped quantity cancelled (cancels, decreases);
- `StockIssue`         quantity physically dispatched (decrements on-hand where it shipped,
                       and the line's reservation where it was reserved).

The inventory side answers, keyed by `order_id`, with `AllocationResult`: the line's
*absolute* allocation as the inventory side holds it (reserved and backordered quantity at
one warehouse, promise date) after processing the order's messages up to `ack_seq`. Fills
of backorders are simply new results with more `allocated` and less `backordered`.

Why absolute numbers plus an acknowledgement instead of deltas: requests, releases and
issues cross results in flight (a cancel is decided by the order before the answer to the
request it cancels arrives). Each order message carries a per-line `seq`; the order keeps
the messages the inventory has not acknowledged yet and predicts its view by replaying them
on the last absolute result with the inventory's own rules (`reconcile_line`). Once every
message is acknowledged the order's buckets *are* the inventory's, whatever the timing.
See docs/order-model.md "Allocation contract".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:  # pragma: no cover
    from tables.order_state import Line

# kinds of unacknowledged order messages kept per line (requests need no replay: their
# quantity is whatever is neither allocated nor backordered, i.e. pending)
RELEASE = 0
ISSUE = 1


@cache
def _shape(cls: type) -> tuple[tuple[str, ...], frozenset[str]]:
    """Field names in order, and those that may be absent (typed `... | None`)."""
    names = tuple(f.name for f in fields(cls))
    return names, frozenset(f.name for f in fields(cls) if "None" in str(f.type))


class _Message:
    """`to_dict()` / `from_dict()` for the contract's frozen dataclasses, with a `type` tag."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        names, _ = _shape(type(self))
        return {"type": self.TYPE, **{n: getattr(self, n) for n in names}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        names, optional = _shape(cls)
        return cls(*(d.get(n) if n in optional else d[n] for n in names))


@dataclass(frozen=True, slots=True)
class AllocationRequest(_Message):
    """Reserve `quantity` more of `sku` for the line (at `warehouse_id`, or the best one)."""

    TYPE: ClassVar[str] = "AllocationRequest"
    order_id: str
    line_id: str
    sku: str
    warehouse_id: str | None
    quantity: int
    accepted_at: int  # the order's acceptance time: FCFS priority of backorder fills
    requested_at: int  # occurred_at of the event that caused the request
    seq: int
    cause_event_id: str



@dataclass(frozen=True, slots=True)
class AllocationRelease(_Message):
    """Drop `quantity` of the line's reservation/backorder (backordered first)."""

    TYPE: ClassVar[str] = "AllocationRelease"
    order_id: str
    line_id: str
    sku: str
    warehouse_id: str | None  # the order's last known reservation warehouse (informative)
    quantity: int
    released_at: int
    seq: int
    cause_event_id: str



@dataclass(frozen=True, slots=True)
class StockIssue(_Message):
    """`quantity` left `warehouse_id` physically (ShipmentDispatched).

    The inventory side decrements on-hand at `warehouse_id` by `quantity`, and the line's
    reservation (allocated first, then backordered, never below zero) wherever it is held
    (`reserved_warehouse`; releasing it there when it differs from the shipping one).
    """

    TYPE: ClassVar[str] = "StockIssue"
    order_id: str
    line_id: str
    sku: str
    warehouse_id: str
    quantity: int
    reserved_warehouse: str | None
    shipment_id: str
    issued_at: int
    seq: int
    cause_event_id: str



@dataclass(frozen=True, slots=True)
class AllocationResult(_Message):
    """The inventory side's absolute view of one line after order message `ack_seq`.

    `allocated` is reserved at `warehouse_id`, `backordered` waits there for stock;
    `promised_at` is the expected date of the supply that covers the backorder, if any.
    `result_id` is unique (idempotency key, like an event_id); `occurred_at` is the business
    time of the inventory event that produced it (used for milestones).
    """

    TYPE: ClassVar[str] = "AllocationResult"
    order_id: str
    line_id: str
    sku: str
    warehouse_id: str | None
    allocated: int
    backordered: int
    promised_at: int | None
    ack_seq: int
    result_id: str
    occurred_at: int



AllocationMessage = AllocationRequest | AllocationRelease | StockIssue

_BY_TYPE: dict[str, Any] = {
    c.TYPE: c for c in (AllocationRequest, AllocationRelease, StockIssue, AllocationResult)
}


def message_from_dict(d: Mapping[str, Any]) -> AllocationMessage | AllocationResult:
    """Decode any allocation-contract message from its `to_dict()` form (by `type`)."""
    try:
        cls = _BY_TYPE[d["type"]]
    except KeyError:
        raise ValueError(f"not an allocation message: type={d.get('type')!r}") from None
    return cls.from_dict(d)


def reconcile_line(line: Line) -> None:
    """Recompute the line's allocated/backordered/pending from the inventory's last answer.

    Start from the last acknowledged absolute result (`base_allocated`, `base_backordered`),
    replay the unacknowledged releases (backordered first, then allocated) and issues
    (allocated first, then backordered) exactly as the inventory side will, fit the result
    into the line's open unshipped quantity, and call the rest pending (requested, not yet
    answered). Only for accepted orders: before acceptance the three buckets are 0.
    """
    need = line.ordered - line.cancelled - line.shipped
    a = line.base_allocated
    b = line.base_backordered
    for op in line.inflight:
        q = op[2]
        if op[1] == RELEASE:
            t = q if q < b else b
            b -= t
            q -= t
            a -= q if q < a else a
        else:
            t = q if q < a else a
            a -= t
            q -= t
            b -= q if q < b else b
    extra = a + b - need
    if extra > 0:  # the inventory holds more than the order needs: trim backorders first
        t = extra if extra < b else b
        b -= t
        a -= extra - t
    line.allocated = a
    line.backordered = b
    line.pending = need - a - b
