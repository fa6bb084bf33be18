"""Prometheus metrics of the pipeline. Labels have low cardinality only: never an order id or SKU."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector


@dataclass
class Metrics:
    registry: CollectorRegistry = REGISTRY
    events_in: Counter = field(init=False)
    dead_letters: Counter = field(init=False)
    business_exceptions: Counter = field(init=False)
    status_changes: Counter = field(init=False)
    duplicates: Counter = field(init=False)
    allocation_messages: Counter = field(init=False)
    status_transitions: Counter = field(init=False)
    sla_breaches: Counter = field(init=False)
    event_to_status: Histogram = field(init=False)
    consume_to_produce: Histogram = field(init=False)
    table_recovery: Gauge = field(init=False)
    case_changes: Counter = field(init=False)
    orders_by_status: OrdersByStatus = field(init=False)
    sla_at_risk: SlaAtRisk = field(init=False)
    business_kpis: BusinessKpis = field(init=False)
    held_in_memory: HeldInMemory = field(init=False)
    _children: dict[tuple[int, tuple[str, ...]], Any] = field(init=False, default_factory=dict)
    atp_changes: Counter = field(init=False)
    sink_deliveries: Counter = field(init=False)
    sink_retries: Counter = field(init=False)
    sink_failures: Counter = field(init=False)
    sink_delivery_seconds: Histogram = field(init=False)
    sla_checks: Counter = field(init=False)
    sla_index_reads: Counter = field(init=False)
    commit_seconds: Histogram = field(init=False)
    record_to_commit: Histogram = field(init=False)
    aborted_transactions: Counter = field(init=False)

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
        self.status_transitions = Counter(
            "o2c_status_transitions",
            "Status changes published, by previous and new status (previous: NONE for the first)",
            ["previous_status", "status"],
            registry=r,
        )
        self.sla_breaches = Counter(
            "o2c_sla_breaches", "SlaBreached records published, by milestone", ["milestone"], registry=r
        )
        self.event_to_status = Histogram(
            "o2c_event_to_status_seconds",
            "Business time of the causing event (occurred_at) to its status event being emitted",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400, 604800),
            registry=r,
        )
        self.consume_to_produce = Histogram(
            "o2c_consume_to_produce_seconds",
            "A batch of records handed to an agent to its outputs handed to the producer",
            ["agent"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "o2c_commit_seconds",
            "One commit: changelog flush, offsets and outputs committed in one transaction",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.record_to_commit = Histogram(
            "o2c_record_to_commit_seconds",
            "An input record's timestamp (produce time) to the commit that made its outputs visible",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.gc_pause_seconds = Histogram(
            "o2c_gc_pause_seconds",
            "Pauses of the garbage collector (every thread waits), by generation (streams/runtime/collector.py)",
            ["generation"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.aborted_transactions = Counter(
            "o2c_aborted_transactions", "Transactions aborted (their input is processed again)", registry=r
        )
        self.table_recovery = Gauge(
            "o2c_table_recovery_seconds",
            "Duration of the last recovery of the tables' active partitions from their changelogs",
            ["table"],
            registry=r,
        )
        self.case_changes = Counter(
            "o2c_case_changes", "Changes of exception work queue cases published, by the state they left the case in",
            ["state"], registry=r,
        )
        self.orders_by_status = OrdersByStatus()
        r.register(self.orders_by_status)
        self.sla_at_risk = SlaAtRisk()
        r.register(self.sla_at_risk)
        self.business_kpis = BusinessKpis()
        r.register(self.business_kpis)
        self.held_in_memory = HeldInMemory()
        r.register(self.held_in_memory)
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
        self.sla_checks = Counter(
            "o2c_sla_checks", "SLA checks of one table partition (timer or stream time)", registry=r
        )
        self.sla_index_reads = Counter(
            "o2c_sla_index_reads",
            "Due-index entries SLA checks read: the deadlines found, plus one per check at most",
            registry=r,
        )

    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, cached: labels() costs microseconds, too much per event."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


class OrdersByStatus(Collector):
    """`o2c_orders_by_status{status}`: orders on this worker's active partitions (sum over workers
    for the cluster), read at scrape time from the order agent's status counts (`source`, set
    when the app is wired; one app per process)."""

    def __init__(self) -> None:
        self.source: Callable[[], Any] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "o2c_orders_by_status", "Orders by current status on this worker's active partitions", labels=["status"]
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        by_status: dict[str, int] = {}
        for (status, _region, _channel), n in (self.source() if self.source else {}).items():
            by_status[status] = by_status.get(status, 0) + n
        for status, n in sorted(by_status.items()):
            family.add_metric([status], n)
        yield family



class HeldInMemory(Collector):
    """What a worker's memory grows with besides RocksDB's budget (docs/runtime.md, "State size,
    memory and coming back"): `o2c_buffered_records{processor}`, input records fetched and
    decoded but not processed yet (bounded by O2C_BUFFERED_RECORDS_PER_PARTITION per input
    partition), and `o2c_state_cache_entries{store}`, decoded values kept (bounded by
    O2C_STATE_CACHE_ENTRIES per store). Read at scrape time from `source` (set when the app is
    wired): sizes of containers the runtime thread changes meanwhile, so approximate."""

    def __init__(self) -> None:
        self.source: Callable[[], tuple[dict[str, int], dict[str, int]]] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("o2c_buffered_records", "Input records fetched and decoded, not processed yet",
                              labels=["processor"]),
            GaugeMetricFamily("o2c_state_cache_entries", "Decoded state values kept in memory", labels=["store"]),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        buffered, cached = self.source() if self.source else ({}, {})
        records, entries = self._families()
        for processor, n in sorted(buffered.items()):
            records.add_metric([processor], n)
        for store, n in sorted(cached.items()):
            entries.add_metric([store], n)
        yield records
        yield entries


class SlaAtRisk(Collector):
    """`o2c_sla_at_risk{milestone, level}`: open milestones at each level above LOW on this
    worker's active partitions, read at scrape time from the counts the SLA index keeps (`source`,
    set when the app is wired; brought to now at each commit and wall-clock tick): a scrape costs
    nothing per order or entry."""

    def __init__(self) -> None:
        self.source: Callable[[], Any] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "o2c_sla_at_risk", "Open SLA milestones by risk level (MEDIUM, HIGH, CRITICAL) on this worker's "
            "active partitions", labels=["milestone", "level"],
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for (milestone, level), n in sorted((self.source() if self.source else {}).items()):
            family.add_metric([milestone, level], n)
        yield family



class BusinessKpis(Collector):
    """`o2c_kpi_*`: the business KPIs of this worker's active partitions (sum over workers for
    the cluster; `GET /kpis` has them merged, by dimension), from the KPI report `source`
    (set when the app is wired) at scrape time."""

    def __init__(self) -> None:
        self.source: Callable[[], dict[str, Any]] | None = None

    def describe(self) -> Iterator[Any]:
        return iter(())  # families depend on the data (currencies, sources)

    def collect(self) -> Iterator[Any]:
        if self.source is None:
            return
        report = self.source()
        cycle = HistogramMetricFamily(
            "o2c_kpi_cycle_time_seconds", "Order cycle time: placed -> shipped (all open quantity) and placed -> "
            "closed (paid in full)", labels=["span"],
        )
        for span, histogram in report["cycle_time"].items():
            cycle.add_metric([span], *_buckets(histogram["all"]))
        yield cycle
        otif = GaugeMetricFamily("o2c_kpi_otif_orders", "Orders eligible for on-time-in-full, and those on time in full",
                                 labels=["outcome"])
        otif.add_metric(["eligible"], report["otif"]["all"]["eligible"])
        otif.add_metric(["on_time_in_full"], report["otif"]["all"]["on_time_in_full"])
        yield otif
        fill = report["fill_rate_first_allocation"]["all"]
        lines = GaugeMetricFamily("o2c_kpi_first_allocation_lines", "Lines answered by the inventory side a first "
                                  "time, and those fully allocated then", labels=["outcome"])
        lines.add_metric(["answered"], fill["lines"])
        lines.add_metric(["complete"], fill["complete_lines"])
        yield lines
        back = report["backorders"]["all"]
        yield GaugeMetricFamily("o2c_kpi_backorder_lines", "Order lines with backordered quantity", value=back["lines"])
        yield GaugeMetricFamily("o2c_kpi_backorder_quantity", "Backordered quantity", value=back["quantity"])
        yield GaugeMetricFamily("o2c_kpi_ready_to_invoice_quantity", "Shipped quantity not invoiced yet",
                                value=report["invoice_readiness"]["all"]["quantity"])
        money = GaugeMetricFamily("o2c_kpi_receivables_minor", "Invoiced and not paid, and the overdue part, in "
                                  "minor units", labels=["currency", "kind"])
        for currency, row in sorted(report["receivables"]["by_currency"].items()):
            money.add_metric([currency, "open"], row["open_minor"])
            money.add_metric([currency, "overdue"], row["overdue_minor"])
        yield money
        sla = GaugeMetricFamily("o2c_kpi_sla_orders", "Orders by SLA milestone outcome", labels=["milestone", "outcome"])
        for milestone, row in report["sla_adherence"]["by_milestone"].items():
            for outcome in ("on_time", "late", "open", "withdrawn"):
                sla.add_metric([milestone, outcome], row[outcome])
        yield sla
        sync = HistogramMetricFamily("o2c_kpi_sync_latency_seconds", "Input event occurred_at -> processed, by source "
                                     "system", labels=["source"])
        for row in report["sync_latency"]["by"]:
            sync.add_metric([row["source"]], *_buckets(row))
        yield sync


def _buckets(histogram: dict[str, Any]) -> tuple[list[tuple[str, float]], float]:
    """A KPI report histogram (cumulative counts by `le_ms`) as Prometheus buckets and sum."""
    buckets = [
        ("+Inf" if b["le_ms"] is None else repr(b["le_ms"] / 1000), b["count"]) for b in histogram["buckets"]
    ]
    return buckets, histogram["sum_ms"] / 1000


METRICS = Metrics()
