"""GET /orders/{id}/timeline (issue 16, docs/operations-api.md): every published change of the
order with what changed, kept in the order's state: it survives a restart, and beyond
O2C_TIMELINE_ENTRIES the older changes are summarised."""

import json

import pytest

from tests.harness import read_topic

pytestmark = pytest.mark.kafka


def produce(kafka_env, role, events):
    done = kafka_env.o2c("produce", role, "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert done.returncode == 0, done.stderr


def event(n: int, event_type: str, minute: int, **fields):
    return {
        "event_id": f"t{n}",
        "event_type": event_type,
        "occurred_at": f"2026-11-02T09:{minute:02d}:00Z",
        "source": "erp-eu",
        "correlation_id": f"corr-{n}",
        "order_id": "SO-T",
        **fields,
    }


EVENTS = [
    event(1, "OrderPlaced", 0, customer_id="C-1", channel="EDI", region="EU", currency="EUR",
          lines=[{"line_id": "1", "sku": "SKU-T", "quantity": 5, "unit_price_minor": 1000}]),
    event(2, "OrderAccepted", 5),
    event(3, "OrderHoldApplied", 10, hold_type="CREDIT", reason="limit"),
    event(4, "OrderHoldReleased", 20, hold_type="CREDIT"),
    event(5, "OrderLineChanged", 30, line_id="1", quantity=7),
]
T0 = "2026-11-02T09:00:00.000Z"  # answers render timestamps as ISO-8601 UTC


def test_the_timeline_lists_every_change_and_survives_a_restart(kafka_env, workers):
    worker = workers().start().wait_ready()
    # No stock of SKU-T: the inventory side backorders the line (after acceptance, and again
    # after the increase); the rest waits for the first answer so that the order is fixed.
    produce(kafka_env, "orders", EVENTS[:2])
    read_topic(kafka_env.settings, "order-status", expect=3)
    produce(kafka_env, "orders", EVENTS[2:])
    statuses = read_topic(kafka_env.settings, "order-status", expect=7)
    assert [s["status"] for s in statuses] == [
        "SUBMITTED", "ACCEPTED", "BACKORDERED", "ON_HOLD", "BACKORDERED", "BACKORDERED", "BACKORDERED",
    ]
    reply = worker.get("/orders/SO-T/timeline")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["order_id"], body["seq"], body["status"], body["earlier"]) == ("SO-T", 7, "BACKORDERED", None)
    entries = body["entries"]
    assert [e["seq"] for e in entries] == [s["seq"] for s in statuses]
    assert [(e["status_before"], e["status_after"]) for e in entries] == [
        (s["previous_status"], s["status"]) for s in statuses
    ]
    assert [(e["cause_event_type"], e["cause_event_id"]) for e in entries] == [
        (s["cause_event_type"], s["cause_event_id"]) for s in statuses
    ]
    placed, accepted, backordered, held, released = entries[:5]
    assert (placed["source"], placed["correlation_id"], placed["occurred_at"]) == ("erp-eu", "corr-1", T0)
    assert placed["changes"]["lines"] == [{"line_id": "1", "ordered": 5}]
    assert placed["changes"]["milestones_reached"] == ["placed_at"]
    assert accepted["changes"]["milestones_reached"] == ["accepted_at"]
    assert backordered["source"] == "inventory"
    assert backordered["changes"]["lines"] == [{"line_id": "1", "backordered": 5}]
    assert (held["changes"]["holds_added"], held["occurred_at"]) == (["CREDIT"], "2026-11-02T09:10:00.000Z")
    assert released["changes"]["holds_removed"] == ["CREDIT"]
    increased = [e for e in entries[5:] if e["cause_event_type"] == "OrderLineChanged"]
    assert increased and increased[0]["changes"]["lines"][0]["ordered"] == 2
    assert all(e["processed_at"] > e["occurred_at"] for e in entries)  # same format: ordered as text

    worker.stop()
    again = workers("w2").start().wait_ready()  # another worker: from the changelog
    assert again.get("/orders/SO-T/timeline").json() == body
    assert again.get("/orders/SO-404/timeline").status_code == 404
    assert again.get("/orders/bad%20id/timeline").status_code == 400


def test_older_changes_are_summarised(kafka_env, workers):
    worker = workers(O2C_TIMELINE_ENTRIES="2").start().wait_ready()
    produce(kafka_env, "orders", EVENTS[:2])
    read_topic(kafka_env.settings, "order-status", expect=3)
    produce(kafka_env, "orders", EVENTS[2:4])
    read_topic(kafka_env.settings, "order-status", expect=5)
    body = worker.get("/orders/SO-T/timeline").json()
    assert [(e["seq"], e["cause_event_type"]) for e in body["entries"]] == [
        (4, "OrderHoldApplied"), (5, "OrderHoldReleased"),
    ]
    earlier = body["earlier"]
    assert (earlier["entries"], earlier["first_seq"], earlier["last_seq"]) == (3, 1, 3)
    assert earlier["by_cause_type"] == {"AllocationResult": 1, "OrderAccepted": 1, "OrderPlaced": 1}
    assert (earlier["first_occurred_at"], earlier["last_occurred_at"]) == (T0, "2026-11-02T09:05:00.000Z")
