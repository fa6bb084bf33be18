"""Prometheus metrics of the pipeline. Labels have low cardinality only: never an order id or SKU."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry, Counter


@dataclass
class Metrics:
    registry: CollectorRegistry = REGISTRY
    events_in: Counter = field(init=False)
    dead_letters: Counter = field(init=False)
    business_exceptions: Counter = field(init=False)
    status_changes: Counter = field(init=False)
    duplicates: Counter = field(init=False)
    allocation_messages: Counter = field(init=False)
    atp_changes: Counter = field(init=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.events_in = Counter(
            "o2c_events_in",
            "Input events decoded, by topic role and event type",
            ["role", "event_type"],
            registry=r,
        )
        self.dead_letters = Counter(
            "o2c_dead_letters",
            "Records sent to the dead-letter topic, by source role and error class",
            ["role", "error"],
            registry=r,
        )
        self.business_exceptions = Counter(
            "o2c_business_exceptions", "Business exceptions raised, by code", ["code"], registry=r
        )
        self.status_changes = Counter(
            "o2c_status_changes", "OrderStatusChanged events published, by new status", ["status"], registry=r
        )
        self.duplicates = Counter(
            "o2c_duplicate_events", "Input events ignored as repeated event_id", registry=r
        )
        self.allocation_messages = Counter(
            "o2c_allocation_messages",
            "Internal allocation-saga messages sent and received, by message type",
            ["type", "stage"],
            registry=r,
        )
        self.atp_changes = Counter("o2c_atp_changes", "AtpChanged records published", registry=r)


METRICS = Metrics()
