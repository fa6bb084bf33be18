"""One realistic example per event type, in flat form, for tests to reuse.

Input events carry the envelope; outputs are the records themselves. Timestamps are
epoch millis (2026-01-01T00:00:00Z = 1767225600000).
"""

from __future__ import annotations

from typing import Any

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR


def _envelope(n: int, event_type: str, source: str, **key: str) -> dict[str, Any]:
    return {
        "event_id": f"evt-{n:04d}",
        "event_type": event_type,
        "occurred_at": T0 + n * HOUR,
        "source": source,
        "correlation_id": "corr-SO-1001" if "order_id" in key else None,
        **key,
    }


EXAMPLES: dict[str, dict[str, Any]] = {
    # -- o2c.orders -----------------------------------------------------------------
    "OrderPlaced": {
        **_envelope(1, "OrderPlaced", "edi-gw", order_id="SO-1001"),
        "customer_id": "CUST-ACME",
        "channel": "EDI",
        "region": "EU-WEST",
        "currency": "EUR",
        "payment_terms_days": 30,
        "promised_ship_at": T0 + 2 * DAY,
        "lines": [
            {"line_id": "10", "sku": "SKU-BOLT-M8", "quantity": 500, "unit_price_minor": 12, "warehouse_id": "DC1"},
            {"line_id": "20", "sku": "SKU-NUT-M8", "quantity": 500, "unit_price_minor": 7, "warehouse_id": None},
            {"line_id": "30", "sku": "SKU-WASHER-8", "quantity": 1000, "unit_price_minor": 2, "warehouse_id": None},
        ],
    },
    "OrderAccepted": _envelope(2, "OrderAccepted", "erp-eu", order_id="SO-1001"),
    "OrderHoldApplied": {
        **_envelope(3, "OrderHoldApplied", "erp-eu", order_id="SO-1001"),
        "hold_type": "CREDIT",
        "reason": "credit limit exceeded by 1,250.00 EUR",
    },
    "OrderHoldReleased": {
        **_envelope(4, "OrderHoldReleased", "erp-eu", order_id="SO-1001"),
        "hold_type": "CREDIT",
    },
    "OrderLineChanged": {
        **_envelope(5, "OrderLineChanged", "edi-gw", order_id="SO-1001"),
        "line_id": "20",
        "quantity": 400,
    },
    "OrderLineCancelled": {
        **_envelope(6, "OrderLineCancelled", "edi-gw", order_id="SO-1001"),
        "line_id": "30",
        "quantity": 250,
        "reason": "customer reduced forecast",
    },
    "OrderCancelled": {
        **_envelope(7, "OrderCancelled", "ecom-web", order_id="SO-1002"),
        "reason": "customer request",
    },
    # -- o2c.shipments --------------------------------------------------------------
    "ShipmentPicked": {
        **_envelope(8, "ShipmentPicked", "wms-dc1", order_id="SO-1001"),
        "shipment_id": "SH-5001",
        "warehouse_id": "DC1",
        "lines": [{"line_id": "10", "quantity": 500}, {"line_id": "20", "quantity": 400}],
    },
    "ShipmentDispatched": {
        **_envelope(9, "ShipmentDispatched", "wms-dc1", order_id="SO-1001"),
        "shipment_id": "SH-5001",
        "warehouse_id": "DC1",
        "carrier": "DHL",
        "tracking_number": "JD014600006281234567",
        "lines": [{"line_id": "10", "quantity": 500}, {"line_id": "20", "quantity": 400}],
    },
    "ShipmentDelivered": {
        **_envelope(10, "ShipmentDelivered", "tms", order_id="SO-1001"),
        "shipment_id": "SH-5001",
    },
    # -- o2c.payments ---------------------------------------------------------------
    "InvoicePosted": {
        **_envelope(11, "InvoicePosted", "billing", order_id="SO-1001"),
        "invoice_id": "INV-9001",
        "lines": [
            {"line_id": "10", "quantity": 500, "amount_minor": 6000},
            {"line_id": "20", "quantity": 400, "amount_minor": 2800},
        ],
        "total_minor": 10472,
        "due_at": T0 + 31 * DAY,
    },
    "PaymentReceived": {
        **_envelope(12, "PaymentReceived", "psp-adyen", order_id="SO-1001"),
        "payment_id": "PAY-7001",
        "invoice_id": "INV-9001",
        "amount_minor": 10472,
    },
    "PaymentRefunded": {
        **_envelope(13, "PaymentRefunded", "psp-adyen", order_id="SO-1001"),
        "payment_id": "PAY-7001",
        "amount_minor": 472,
        "reason": "damaged goods credit",
    },
    # -- o2c.inventory --------------------------------------------------------------
    "InventoryReceived": {
        **_envelope(14, "InventoryReceived", "wms-dc1", sku="SKU-BOLT-M8"),
        "warehouse_id": "DC1",
        "quantity": 2000,
        "source_doc": "ASN-3001",
    },
    "InventoryAdjusted": {
        **_envelope(15, "InventoryAdjusted", "wms-dc1", sku="SKU-BOLT-M8"),
        "warehouse_id": "DC1",
        "delta": -12,
        "reason": "DAMAGE",
    },
    "InventorySnapshot": {
        **_envelope(16, "InventorySnapshot", "wms-dc2", sku="SKU-NUT-M8"),
        "warehouse_id": "DC2",
        "on_hand": 1480,
        "as_of": T0 + 15 * HOUR,
    },
    "SafetyStockSet": {
        **_envelope(17, "SafetyStockSet", "erp-eu", sku="SKU-NUT-M8"),
        "warehouse_id": "DC2",
        "quantity": 100,
    },
    "SupplyExpected": {
        **_envelope(18, "SupplyExpected", "erp-eu", sku="SKU-WASHER-8"),
        "warehouse_id": "DC1",
        "supply_id": "PO-4501",
        "quantity": 5000,
        "expected_at": T0 + 7 * DAY,
    },
    # -- outputs --------------------------------------------------------------------
    "OrderStatusChanged": {
        "order_id": "SO-1001",
        "seq": 4,
        "status": "PARTIALLY_ALLOCATED",
        "previous_status": "ACCEPTED",
        "customer_id": "CUST-ACME",
        "channel": "EDI",
        "region": "EU-WEST",
        "currency": "EUR",
        "lines": [
            {"line_id": "10", "sku": "SKU-BOLT-M8", "warehouse_id": "DC1", "ordered": 500, "cancelled": 0,
             "allocated": 500, "backordered": 0, "shipped": 0, "delivered": 0, "invoiced": 0, "promised_at": None},
            {"line_id": "30", "sku": "SKU-WASHER-8", "warehouse_id": "DC1", "ordered": 1000, "cancelled": 0,
             "allocated": 200, "backordered": 800, "shipped": 0, "delivered": 0, "invoiced": 0,
             "promised_at": T0 + 7 * DAY},
        ],
        "holds": [],
        "invoiced_minor": 0,
        "paid_minor": 0,
        "refunded_minor": 0,
        "open_balance_minor": 0,
        "milestones": {
            "placed_at": T0 + HOUR,
            "accepted_at": T0 + 2 * HOUR,
            "allocated_at": None,
            "shipped_at": None,
            "delivered_at": None,
            "invoiced_at": None,
            "paid_at": None,
            "closed_at": None,
            "cancelled_at": None,
        },
        "open_breaches": [{"milestone": "ALLOCATION", "due_at": T0 + 4 * HOUR, "detected_at": T0 + 4 * HOUR + 1500}],
        "closed_breaches": [{"milestone": "ACCEPTANCE", "due_at": T0 + HOUR, "detected_at": T0 + HOUR + 900,
                             "met_at": T0 + 2 * HOUR, "late": True}],
        "exceptions": [{"code": "INVOICE_EXCEEDS_SHIPPED", "detail": "line 10: invoiced 10 > shipped 0",
                        "cause_event_id": "evt-0011"}],
        "cause_event_id": "evt-0002",
        "cause_event_type": "OrderAccepted",
        "occurred_at": T0 + 2 * HOUR,
        "emitted_at": T0 + 2 * HOUR + 35,
        "correlation_id": "corr-SO-1001",
    },
    "AtpChanged": {
        "sku": "SKU-BOLT-M8",
        "warehouse_id": "DC1",
        "on_hand": 1988,
        "reserved": 500,
        "backordered": 0,
        "safety_stock": 100,
        "atp": 1388,
        "network_atp": 2640,
        "cause_event_id": "evt-0015",
        "as_of": T0 + 15 * HOUR,
    },
    "SlaBreached": {
        "order_id": "SO-1001",
        "milestone": "ALLOCATION",
        "due_at": T0 + 4 * HOUR,
        "detected_at": T0 + 4 * HOUR + 1500,
        "clock": "WALL",
        "channel": "EDI",
        "region": "EU-WEST",
    },
    "BusinessException": {
        "code": "INVOICE_EXCEEDS_SHIPPED",
        "order_id": "SO-1001",
        "sku": None,
        "detail": "line 10: invoiced 10 > shipped 0",
        "cause_event_id": "evt-0011",
        "occurred_at": T0 + 11 * HOUR,
    },
    "CaseAction": {
        "action_id": "act-1",
        "case_id": "o.SO-1001.SLA-ACCEPTANCE",
        "case_key": "SO-1001",
        "kind": "assign",
        "who": "ana",
        "note": "calling the customer",
        "assignee": "ben",
        "occurred_at": T0 + 5 * HOUR,
    },
    "CaseChanged": {
        "case_id": "o.SO-1001.SLA-ACCEPTANCE",
        "version": 2,
        "code": "SLA-ACCEPTANCE",
        "severity": "MEDIUM",
        "state": "ACKNOWLEDGED",
        "opened_at": T0 + 4 * HOUR + 1500,
        "order_id": "SO-1001",
        "sku": None,
        "warehouse_id": None,
        "region": "EU-WEST",
        "channel": "EDI",
        "customer_id": "C-77",
        "detail": "ACCEPTANCE due at 1793624400000 not reached",
        "cause_event_id": None,
        "milestone": "ACCEPTANCE",
        "due_at": T0 + 4 * HOUR,
        "assignee": "ben",
        "note": "calling the customer",
        "updated_at": T0 + 5 * HOUR,
        "updated_by": "ana",
        "acknowledged_at": T0 + 5 * HOUR,
        "acknowledged_by": "ana",
        "resolved_at": None,
        "resolved_by": None,
        "resolution": None,
    },
}
