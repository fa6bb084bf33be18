"""The inventory agent: one stream over `o2c.inventory` and the allocation requests of the order
side (both keyed by SKU), applied to one `SkuState` per SKU (tables.inventory) kept in a RocksDB
table.

Per batch of one partition's records (as the order agent, streams/processors/orders.py):
  decode -> apply_inventory_event / apply_order_message -> send allocation results (to the
  orders, keyed by order_id), AtpChanged (o2c.atp, keyed by SKU), business exceptions
  (NEGATIVE_ATP...) and dead letters -> remember the state.
Every record joins the worker's transaction together with the offsets of its input, so the loop
order -> request -> inventory -> result -> order is exactly once hop by hop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from streams.contracts.codec import Codec, CodecError
from streams.contracts.flat import key_of, to_flat
from streams.contracts.roles import ALLOCATION_REQUESTS
from streams.metrics import METRICS
from streams.processors import saga
from streams.processors.cases import case_events_topic, opened_fact
from streams.processors.deadletter import dead_letter
from streams.processors.orders import KeyMismatch
from streams.runtime.processor import BatchAgent, record_key
from streams.runtime.store import Split
from streams.settings import Settings
from tables.allocation import AllocationResult
from tables.cases import sku_cases
from tables.inventory import (
    InvalidEvent,
    SkuState,
    apply_inventory_event,
    apply_order_message,
)

log = logging.getLogger("o2c.inventory")


class InventoryAgent(BatchAgent):
    name = "o2c.inventory"

    def __init__(self, settings: Settings, codec: Codec) -> None:
        topics = {settings.topic("inventory"): "inventory", saga.requests_topic(settings): ALLOCATION_REQUESTS}
        super().__init__(settings, topics)
        self.codec = codec
        self.atp_topic = settings.topic("atp")
        self.exceptions_topic = settings.topic("exceptions")
        self.results_topic = saga.results_topic(settings)
        self.case_events_topic = case_events_topic(settings)
        self.internal = (saga.requests_topic(settings),)  # waited for: see OrderAgent.emits
        if settings.align_answers:  # the order agent waits for this agent's progress (OrderAgent)
            self.emits = {self.results_topic: (settings.topic("inventory"), saga.requests_topic(settings))}
        self.store = self.new_store(
            "inventory", SkuState.from_bytes, SkuState.to_bytes,
            Split(SkuState.to_parts, SkuState.from_parts, SkuState.changed_parts),
        )

    def process(self, records: Sequence[Any], out: Any) -> None:
        # Records stay in delivery order: the runtime merged the two topics of a partition by
        # business time (an allocation request by its cause's), and the ledger's FCFS rule uses
        # acceptance times, not arrival order across topics.
        send = out.send
        mutex = self.store.mutex
        for record in records:
            with mutex:
                try:
                    self.apply(send, record, self.item_of(record))
                except (InvalidEvent, CodecError) as exc:
                    dead_letter(send, self.settings, record, exc)

    def decode(self, message: Any) -> Any:
        """A flat inventory event, or an allocation request from the order side."""
        if self.topics[message.topic] == ALLOCATION_REQUESTS:
            item: Any = saga.decode(message.value)
            sku = getattr(item, "sku", None)
            if isinstance(item, AllocationResult):
                raise saga.SagaDecodeError("AllocationResult on the allocation requests topic")
            METRICS.child(METRICS.allocation_messages, item.TYPE, "received").inc()
        else:
            item = to_flat("inventory", self.codec.decode("inventory", message.value))
            sku = item["sku"]
            self.counted("inventory", item["event_type"]).inc()
        key = record_key(message)
        if key != sku:
            raise KeyMismatch(f"record key {key!r} does not match sku {sku!r}")
        return item

    def apply(self, send: Any, message: Any, item: Any) -> None:
        role = self.topics[message.topic]
        sku = item.sku if role == ALLOCATION_REQUESTS else item["sku"]
        raw_key = sku.encode()
        partition = message.partition
        state = self.store.get(partition, raw_key) or SkuState(sku)
        if role == ALLOCATION_REQUESTS:
            outcome = apply_order_message(state, item)
        else:
            outcome = apply_inventory_event(state, item)
        if outcome.duplicate:
            METRICS.duplicates.inc()
            if role == ALLOCATION_REQUESTS:  # exactly-once never repeats one: worth a line in the log
                log.info("repeated %s order_id=%s line=%s seq=%s (partition %s offset %s)", item.TYPE,
                         item.order_id, item.line_id, item.seq, partition, message.offset)
            return
        for exc in outcome.exceptions:
            record = exc.to_dict()
            send(self.exceptions_topic, key_of("exceptions", record).encode(), self.codec.encode("exceptions", record), None)
            for case in sku_cases([exc]):  # the exception work queue (streams/processors/cases.py)
                send(self.case_events_topic, case.key.encode(), opened_fact(case), None, message.cause_header())
            METRICS.child(METRICS.business_exceptions, exc.code).inc()
            log.debug("business exception sku=%s order_id=%s code=%s: %s", sku, exc.order_id, exc.code, exc.detail)
        cause = message.cause_header() if outcome.results else None  # ordered by its cause's time
        for result in outcome.results:
            send(self.results_topic, result.order_id.encode(), saga.encode(result), None, cause)
            METRICS.child(METRICS.allocation_messages, result.TYPE, "sent").inc()
        for atp in outcome.atp:
            send(self.atp_topic, raw_key, self.codec.encode("atp", atp.to_dict()), None)
        if outcome.atp:
            METRICS.atp_changes.inc(len(outcome.atp))
        if outcome.changed:
            self.store.put(partition, raw_key, state)
