"""The allocation saga's two internal topics and their encoding.

Orders and inventory live on different keys (order_id, sku), hence on different partitions and
possibly different workers. They talk through two internal topics (docs/inventory-agent.md):

- `<app_id>-allocation-requests`, keyed by `sku`, co-partitioned with `o2c.inventory`:
  AllocationRequest / AllocationRelease / StockIssue from the order agent;
- `<app_id>-allocation-results`, keyed by `order_id`, co-partitioned with the order topics:
  AllocationResult from the inventory agent.

Values are the contract messages' `to_dict()` as compact JSON: internal, never read by another
system, and evolved together with the code that writes and reads them (a message carries its
`type`; a reader rejects what it cannot read to the dead-letter topic).
"""

from __future__ import annotations

import json
from typing import Any

from streams.codec import CodecError
from streams.settings import Settings
from tables.allocation import AllocationMessage, AllocationResult, message_from_dict

REQUESTS = "allocation-requests"
RESULTS = "allocation-results"
INTERNAL_TOPICS = (REQUESTS, RESULTS)


class SagaDecodeError(CodecError):
    """An internal allocation record that is not a contract message."""


def requests_topic(settings: Settings) -> str:
    return settings.internal_topic(REQUESTS)


def results_topic(settings: Settings) -> str:
    return settings.internal_topic(RESULTS)


def encode(message: AllocationMessage | AllocationResult) -> bytes:
    return json.dumps(message.to_dict(), separators=(",", ":")).encode()


def decode(value: bytes | None) -> Any:
    """The contract message in `value`, or SagaDecodeError."""
    if value is None:
        raise SagaDecodeError("empty allocation record")
    try:
        return message_from_dict(json.loads(value))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SagaDecodeError(f"not an allocation message: {exc}") from None
