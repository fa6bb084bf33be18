"""Helpers shared by the sink tests (no tests here): status events and records, order input."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable

from sinks.base import StatusRecord
from streams.contracts.codec import Codec
from streams.settings import load_settings
from tests.examples import EXAMPLES


def status_event(order_id: str, seq: int, **changes) -> dict:
    event = copy.deepcopy(EXAMPLES["OrderStatusChanged"])
    event.update(order_id=order_id, seq=seq, **changes)
    return event


def status_record(event: dict, offset: int = 0) -> StatusRecord:
    codec = Codec(load_settings())
    value = codec.encode("order-status", event)
    return StatusRecord(event, event["order_id"].encode(), value, [], "o2c.order-status", 0, offset)


PLACED = {
    "event_id": "e1",
    "event_type": "OrderPlaced",
    "occurred_at": "2026-11-02T09:00:00Z",
    "source": "erp-eu",
    "customer_id": "C-9",
    "channel": "EDI",
    "region": "EU",
    "currency": "EUR",
    "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 5, "unit_price_minor": 1250}],
}
ACCEPTED = {"event_id": "e2", "event_type": "OrderAccepted", "occurred_at": "2026-11-02T09:05:00Z", "source": "erp-eu"}


def order_events(order_id: str, *events: dict) -> list[dict]:
    return [{**e, "event_id": f"{order_id}-{e['event_id']}", "order_id": order_id} for e in events]


def produce(kafka_env, role: str, events: list[dict]) -> None:
    """Through `o2c produce`, as a source system would."""
    done = kafka_env.o2c("produce", role, "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert done.returncode == 0, done.stderr


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


