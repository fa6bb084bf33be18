"""The order agent end to end: one worker, a few events, status topic, HTTP and dead letters."""

import json

import pytest
import requests
from confluent_kafka import Producer

from tests.harness import read_topic

pytestmark = pytest.mark.kafka


def produce(kafka_env, role, events):
    done = kafka_env.o2c("produce", role, "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert done.returncode == 0, done.stderr


PLACED = {
    "event_id": "e1",
    "event_type": "OrderPlaced",
    "occurred_at": "2026-11-02T09:00:00Z",
    "source": "erp-eu",
    "order_id": "SO-1",
    "customer_id": "C-9",
    "channel": "EDI",
    "region": "EU",
    "currency": "EUR",
    "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 5, "unit_price_minor": 1250}],
}
ACCEPTED = {
    "event_id": "e2",
    "event_type": "OrderAccepted",
    "occurred_at": "2026-11-02T09:05:00Z",
    "source": "erp-eu",
    "order_id": "SO-1",
}


def test_status_events_http_and_dead_letters(kafka_env, workers):
    worker = workers().start().wait_ready()
    produce(kafka_env, "orders", [PLACED, ACCEPTED, ACCEPTED])
    raw = Producer(
        {"bootstrap.servers": kafka_env.settings.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    raw.produce(kafka_env.settings.topic("orders"), key=b"SO-1", value=b"junk")
    raw.flush(10)

    # No stock of SKU-1 anywhere: the inventory side answers with a backorder.
    statuses = read_topic(kafka_env.settings, "order-status", expect=3)
    assert [(s["seq"], s["status"], s["previous_status"]) for s in statuses] == [
        (1, "SUBMITTED", None),
        (2, "ACCEPTED", "SUBMITTED"),
        (3, "BACKORDERED", "ACCEPTED"),
    ]
    assert {s["_key"] for s in statuses} == {"SO-1"}
    assert statuses[2]["cause_event_type"] == "AllocationResult"
    assert [(ln["allocated"], ln["backordered"]) for ln in statuses[2]["lines"]] == [(0, 5)]

    reply = worker.get("/orders/SO-1?wait_for=BACKORDERED&timeout=10")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "BACKORDERED" and body["seq"] == 3

    dead = read_topic(kafka_env.settings, "dlq", expect=1)
    assert len(dead) == 1
    headers = dead[0]["_headers"]
    assert headers["o2c.error_class"] == b"DecodeError"
    assert headers["o2c.source_topic"] == kafka_env.settings.topic("orders").encode()
    assert dead[0]["_value"] == b"junk" and dead[0]["_key"] == "SO-1"

    assert worker.get("/orders/SO-404").status_code == 404
    assert worker.get("/orders/bad%20id").status_code == 400
    assert worker.get("/orders/SO-1?wait_for=NOPE").status_code == 400
    assert worker.get("/orders/SO-1?wait_for=CLOSED&timeout=0.5").status_code == 408
    # errors of the web server itself are JSON too (SPEC §8)
    unknown = worker.get("/no/such/path")
    assert unknown.status_code == 404 and "no such path" in unknown.json()["error"]
    wrong = requests.post(f"{worker.url}/orders/SO-1", timeout=10)
    assert wrong.status_code == 405 and "POST" in wrong.json()["error"]
    stats = worker.get("/stats").json()
    assert stats["by_status"] == {"BACKORDERED": 1} and stats["orders"] == 1
    assert worker.errors() == []
