"""Business exceptions raised by the order model (SPEC §4, §7 `BusinessException`).

A business exception is not a Python exception: it is a fact the model publishes to the
`exceptions` topic ("this event made no sense for this order, here is what was done").
`docs/order-model.md` lists every code with the rule that raises it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Code:
    """Every business-exception code the order model raises (plain strings)."""

    # SPEC-named codes
    INVOICE_EXCEEDS_SHIPPED = "INVOICE_EXCEEDS_SHIPPED"
    SHIP_EXCEEDS_ORDERED = "SHIP_EXCEEDS_ORDERED"
    EVENT_AFTER_CANCEL = "EVENT_AFTER_CANCEL"
    UNKNOWN_LINE = "UNKNOWN_LINE"
    UNKNOWN_INVOICE = "UNKNOWN_INVOICE"
    OVERPAYMENT = "OVERPAYMENT"
    # order lifecycle
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    DUPLICATE_LINE = "DUPLICATE_LINE"
    ALREADY_ACCEPTED = "ALREADY_ACCEPTED"
    HOLD_NOT_ACTIVE = "HOLD_NOT_ACTIVE"
    CANCEL_EXCEEDS_OPEN = "CANCEL_EXCEEDS_OPEN"
    CHANGE_BELOW_SHIPPED = "CHANGE_BELOW_SHIPPED"
    # shipments
    DUPLICATE_SHIPMENT = "DUPLICATE_SHIPMENT"
    UNKNOWN_SHIPMENT = "UNKNOWN_SHIPMENT"
    DUPLICATE_DELIVERY = "DUPLICATE_DELIVERY"
    # money
    DUPLICATE_INVOICE = "DUPLICATE_INVOICE"
    DUPLICATE_PAYMENT = "DUPLICATE_PAYMENT"
    UNKNOWN_PAYMENT = "UNKNOWN_PAYMENT"
    REFUND_EXCEEDS_PAID = "REFUND_EXCEEDS_PAID"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    # generic input problems
    INVALID_QUANTITY = "INVALID_QUANTITY"
    UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
    INVALID_EVENT = "INVALID_EVENT"
    BUFFER_FULL = "BUFFER_FULL"
    # allocation contract
    UNEXPECTED_ALLOCATION = "UNEXPECTED_ALLOCATION"
    STALE_ALLOCATION = "STALE_ALLOCATION"
    ALLOCATION_MISMATCH = "ALLOCATION_MISMATCH"
    # raised by the SLA engine (later issue), listed so every code lives here
    ORPHAN_EVENT = "ORPHAN_EVENT"


ALL_CODES: frozenset[str] = frozenset(
    v for k, v in vars(Code).items() if not k.startswith("_") and isinstance(v, str)
)


@dataclass(frozen=True, slots=True)
class BusinessException:
    """One raised exception; `to_dict()` is the `BusinessException` output record."""

    code: str
    order_id: str | None
    detail: str
    cause_event_id: str
    occurred_at: int
    sku: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "order_id": self.order_id,
            "sku": self.sku,
            "detail": self.detail,
            "cause_event_id": self.cause_event_id,
            "occurred_at": self.occurred_at,
        }

    def to_ref(self) -> dict[str, Any]:
        """The `ExceptionRef` embedded in `OrderStatusChanged.exceptions`."""
        return {"code": self.code, "detail": self.detail, "cause_event_id": self.cause_event_id}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BusinessException:
        return cls(
            d["code"],
            d.get("order_id"),
            d["detail"],
            d["cause_event_id"],
            d["occurred_at"],
            d.get("sku"),
        )
