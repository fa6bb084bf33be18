"""GET /kpis and the o2c_kpi_* metrics (issue 16 point 4, docs/operations-api.md "Business
KPIs"): exact figures of a small story, kept in the `kpis` store so that another worker
restoring from the changelogs answers the same."""

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import read_topic

pytestmark = pytest.mark.kafka

T0 = 1793610000000  # 2026-11-02T09:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def ev(n: int, event_type: str, at: int, source: str, **fields) -> dict:
    return {"event_id": f"k{n}", "event_type": event_type, "occurred_at": at, "source": source, **fields}


def produce(kafka_env, role: str, events: list[dict]) -> None:
    done = kafka_env.o2c("produce", role, "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert done.returncode == 0, done.stderr


def line(qty: int) -> list[dict]:
    return [{"line_id": "1", "sku": "SKU-K", "quantity": qty, "unit_price_minor": 1000, "warehouse_id": "WH-1"}]


def test_kpis_of_a_small_story(kafka_env, workers) -> None:
    worker = workers(O2C_SLA_CLOCK="event").start().wait_ready()
    produce(kafka_env, "inventory", [ev(1, "InventoryReceived", T0 - HOUR, "wms-1", sku="SKU-K", warehouse_id="WH-1",
                                        quantity=10, source_doc="ASN-1")])
    placed = {"customer_id": "C-1", "channel": "EDI", "region": "EU", "currency": "EUR"}
    produce(kafka_env, "orders", [
        ev(2, "OrderPlaced", T0, "erp-eu", order_id="K-1", lines=line(4), **placed),
        ev(3, "OrderAccepted", T0 + 5 * MINUTE, "erp-eu", order_id="K-1"),
    ])
    read_topic(kafka_env.settings, "order-status", expect=3)  # SUBMITTED, ACCEPTED, ALLOCATED
    produce(kafka_env, "orders", [
        ev(4, "OrderPlaced", T0 + 6 * MINUTE, "erp-eu", order_id="K-2", lines=line(20), **placed),
        ev(5, "OrderAccepted", T0 + 10 * MINUTE, "erp-eu", order_id="K-2"),
    ])
    read_topic(kafka_env.settings, "order-status", expect=6)  # K-2: 6 allocated, 14 backordered
    produce(kafka_env, "shipments", [
        ev(6, "ShipmentDispatched", T0 + 2 * HOUR, "wms-1", order_id="K-1", shipment_id="SH-1", warehouse_id="WH-1",
           carrier="DHL", tracking_number="T-1", lines=[{"line_id": "1", "quantity": 4}]),
    ])
    produce(kafka_env, "payments", [
        ev(7, "InvoicePosted", T0 + 3 * HOUR, "fin-1", order_id="K-1", invoice_id="INV-1",
           lines=[{"line_id": "1", "quantity": 4, "amount_minor": 4000}], total_minor=4000, due_at=T0 + 30 * DAY),
        ev(8, "PaymentReceived", T0 + 4 * HOUR, "fin-1", order_id="K-1", payment_id="PAY-1", invoice_id="INV-1",
           amount_minor=4000),
    ])
    statuses = read_topic(kafka_env.settings, "order-status", expect=10, idle=2)
    assert statuses[-1]["order_id"] == "K-1" and statuses[-1]["status"] == "CLOSED"

    reply = worker.get("/kpis")
    assert reply.status_code == 200, reply.text
    kpis = reply.json()
    shipped = kpis["cycle_time"]["placed_to_shipped"]["all"]
    assert (shipped["count"], shipped["sum_ms"]) == (1, 2 * HOUR)
    closed = kpis["cycle_time"]["placed_to_closed"]["all"]
    assert (closed["count"], closed["sum_ms"]) == (1, 4 * HOUR)
    assert kpis["otif"]["all"] == {"eligible": 1, "on_time_in_full": 1, "rate": 1.0}
    fill = kpis["fill_rate_first_allocation"]["all"]
    assert (fill["lines"], fill["complete_lines"], fill["requested"], fill["allocated"]) == (2, 1, 24, 10)
    back = kpis["backorders"]["all"]
    assert (back["lines"], back["quantity"]) == (1, 14)
    assert kpis["invoice_readiness"]["all"]["quantity"] == 0
    eur = kpis["receivables"]["by_currency"]["EUR"]
    assert (eur["open_minor"], eur["overdue_minor"], eur["collected_minor"]) == (0, 0, 4000)
    assert kpis["sla_adherence"]["by_milestone"]["ACCEPTANCE"]["on_time"] == 2
    allocation = kpis["sla_adherence"]["by_milestone"]["ALLOCATION"]
    assert (allocation["on_time"], allocation["open"]) == (1, 1)  # K-2 backordered for over 2 h
    by_source = {row["source"]: row["count"] for row in kpis["sync_latency"]["by"]}
    assert by_source == {"erp-eu": 4, "wms-1": 1, "fin-1": 2}
    assert kpis["workers"] == 1

    families = {f.name: f for f in text_string_to_metric_families(worker.get("/metrics").text)}
    otif = {s.labels["outcome"]: s.value for s in families["o2c_kpi_otif_orders"].samples}
    assert otif == {"eligible": 1.0, "on_time_in_full": 1.0}
    assert families["o2c_kpi_backorder_quantity"].samples[0].value == 14.0
    cycle = {(s.name, s.labels.get("span"), s.labels.get("le")): s.value
             for s in families["o2c_kpi_cycle_time_seconds"].samples}
    assert cycle[("o2c_kpi_cycle_time_seconds_sum", "placed_to_shipped", None)] == 7200.0
    assert cycle[("o2c_kpi_cycle_time_seconds_bucket", "placed_to_shipped", "14400.0")] == 1.0

    worker.stop()  # another worker, from the changelogs only, answers the same
    again = workers("w2", O2C_SLA_CLOCK="event").start().wait_ready()
    later = again.get("/kpis").json()
    for part in ("cycle_time", "otif", "fill_rate_first_allocation", "sla_adherence", "sync_latency"):
        assert later[part] == kpis[part], part
    assert again.get("/kpis?region=EU").status_code == 400
    assert worker.errors() == [] and again.errors() == []
