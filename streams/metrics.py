"""Prometheus metrics of the pipeline. Labels have low cardinality only: never an order id or SKU."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram


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
    sink_deliveries: Counter = field(init=False)
    sink_retries: Counter = field(init=False)
    sink_failures: Counter = field(init=False)
    sink_delivery_seconds: Histogram = field(init=False)
    sla_breaches: Counter = field(init=False)

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
        # Sinks (docs/sinks.md); names fixed: dashboards use them.
        self.sink_deliveries = Counter(
            "o2c_sink_deliveries",
            "Status events a sink is done with, by outcome (delivered or dead_lettered)",
            ["sink", "outcome"],
            registry=r,
        )
        self.sink_retries = Counter(
            "o2c_sink_retries", "Retries of a delivery (webhook attempt, batch retry)", ["sink"], registry=r
        )
        self.sink_failures = Counter(
            "o2c_sink_failures", "Failed delivery attempts, retried or not (a request, a batch)", ["sink"], registry=r
        )
        self.sink_delivery_seconds = Histogram(
            "o2c_sink_delivery_seconds",
            "Seconds a sink took to deliver one batch, retries included",
            ["sink"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.sla_breaches = Counter(
            "o2c_sla_breaches", "SlaBreached records published, by milestone", ["milestone"], registry=r
        )


METRICS = Metrics()
