"""The order agent: one stream over the co-partitioned orders, shipments and payments topics
and the allocation results of the inventory side, joined into one `OrderState` per order
(tables.order) kept in a RocksDB table.

Per batch of one partition's records (the runtime, streams/runtime/engine.py, hands them over in
record-time order and commits them, with everything they caused, in one transaction):
  decode -> apply_event / apply_allocation under the SLA clocks -> `tables.emission` says what to
  send (breaches, exceptions, a status event, allocation messages) and whether to store the
  state -> send it; dead letters for what cannot be applied.
States reach the changelog and RocksDB once per key per commit (streams/runtime/store.py).
A status event is sent per changing event (not per batch), so `seq` is 1, 2, 3... per order
whatever the batching. Allocation requests, releases and stock issues go to the inventory agent
keyed by SKU (streams/processors/saga.py), which answers with allocation results keyed by order_id.

SLAs (SPEC §6, docs/sla.md): around each change the order's overdue deadlines are breached
(before the event, so a milestone reached late first breaches, then closes late; and after it,
for deadlines that were already past when created). Other orders' deadlines are found by the
partition checks of streams/processors/sla.py: on the runtime's timer (wall clock) or when an event advances
the partition's stream time (event clock, before that event is applied).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from streams.contracts.codec import Codec, CodecError
from streams.contracts.flat import to_flat
from streams.contracts.roles import ALLOCATION_RESULTS, ORDER_ROLES
from streams.metrics import METRICS
from streams.processors import saga
from streams.processors.cases import case_events_topic, cleared_fact, opened_fact
from streams.processors.deadletter import dead_letter
from streams.processors.kpis import KpiSums, decode_sums, encode_sums
from streams.processors.sla import SlaChecks
from streams.processors.status_counts import StatusCounts
from streams.runtime.processor import BatchAgent, record_key
from streams.settings import Settings
from tables.allocation import AllocationResult
from tables.cases import Case, cases_auto_resolved, cases_raised, may_clear
from tables.emission import Cause, Emission, breached, emission_of
from tables.order import InvalidEvent, OrderState, apply_allocation, apply_event, status_event
from tables.sla import apply_under_sla
from tables.timeline import Before, append_stored, before_of, entry_list

log = logging.getLogger("o2c.orders")

Send = Callable[..., None]


class KeyMismatch(CodecError):
    """The record's key differs from the key field of its event: it sits on the wrong partition."""


class OrderAgent(BatchAgent):
    name = "o2c.orders"

    def __init__(self, settings: Settings, codec: Codec, notify: Callable[[str], None] | None = None) -> None:
        topics = {settings.topic(role): role for role in ORDER_ROLES}
        topics[saga.results_topic(settings)] = ALLOCATION_RESULTS
        super().__init__(settings, topics)
        self.codec = codec
        self.notify = notify or (lambda order_id: None)
        self.status_topic = settings.topic("order-status")
        self.exceptions_topic = settings.topic("exceptions")
        self.breaches_topic = settings.topic("sla-breaches")
        self.requests_topic = saga.requests_topic(settings)
        self.case_events_topic = case_events_topic(settings)
        # The inventory agent waits for this agent's progress in business time before it applies
        # a later inventory event (docs/runtime.md, "Event-time order"); requests are caused by the
        # source events only (applying an answer never sends one). With `align_answers` this agent
        # waits for the inventory side's progress too, only before an event of an order an answer
        # may still change (`awaits_answers`); without it the answers are merged by their cause's
        # time when they arrive.
        results = saga.results_topic(settings)
        self.emits = {self.requests_topic: tuple(t for t in self.topics if t != results)}
        if settings.align_answers:
            self.internal = (results,)
            self.awaits_answers = self._awaits_answers
        self.store = self.new_store("orders", OrderState.from_bytes, OrderState.to_bytes)
        self.status_counts = StatusCounts(self.store)
        self.kpis = KpiSums(self.new_store("kpis", decode_sums, encode_sums), self.store)
        self.sla = SlaChecks(settings, self.store, self.breach_overdue)
        if self.sla.stream_times is not None:
            self.stores.append(self.sla.stream_times)
        if settings.sla_clock == "wall":
            self.punctuate_interval = settings.sla_check_interval
        self.timeline_entries = settings.timeline_entries
        # What a timeline entry compares with, taken before each input (none when it is off).
        self.before_of: Callable[[OrderState], Before | None] = (
            before_of if self.timeline_entries else lambda state: None
        )

    # ------------------------------------------------------------------ runtime callbacks

    def process(self, records: Sequence[Any], out: Any) -> None:
        # In business-time order: the runtime merged the topics by `event_time`.
        now = int(time.time() * 1000)
        send = out.send
        mutex = self.store.mutex
        for record in records:
            try:
                item = self.item_of(record)
            except CodecError as exc:
                dead_letter(send, self.settings, record, exc)
                continue
            with mutex:
                try:
                    self.apply(send, record, item, now)
                except InvalidEvent as exc:
                    dead_letter(send, self.settings, record, exc)

    def assigned(self, partitions: set[int]) -> None:
        self.status_counts.invalidate()
        self.sla.open(partitions)
        self.kpis.assigned(partitions)

    def revoked(self, partitions: set[int]) -> None:
        self.status_counts.invalidate()
        self.sla.close(partitions)

    def punctuate(self, out: Any) -> None:
        """The wall-clock SLA check of every active partition (in the open transaction)."""
        self.sla.tick(out.send)

    def before_commit(self) -> None:
        """The due index follows the orders changed since the last commit: once per commit, not
        per batch (live traffic runs batches of a few records; the SLA check syncs the
        partition it scans itself)."""
        self.sla.sync()

    def committed(self) -> None:
        self.sla.mark_covered()
        self.sla.refresh_counts()

    def _awaits_answers(self, record: Any) -> bool:
        """Whether this input must wait until the inventory side has answered everything caused
        before it: its order has a request not answered yet, or a backorder stock may fill
        (`OrderState.awaits_inventory`). Any other order's outcome does not depend on when the
        answers arrive, so its events go on (the runtime's `Task.awaits`)."""
        if not isinstance(record.decoded, dict):  # undecodable: dead-lettered, nothing to wait for
            return False
        state = self.store.get(record.partition, record.key)
        return state is not None and state.awaits_inventory

    # ------------------------------------------------------------------ one event

    def decode(self, message: Any) -> dict[str, Any] | AllocationResult:
        """A flat input event, or an AllocationResult from the inventory side."""
        role = self.topics[message.topic]
        if role == ALLOCATION_RESULTS:
            item = saga.decode(message.value)
            if not isinstance(item, AllocationResult):
                raise saga.SagaDecodeError(f"{item.TYPE} on the allocation results topic")
            order_id = item.order_id
            METRICS.child(METRICS.allocation_messages, item.TYPE, "received").inc()
        else:
            item = to_flat(role, self.codec.decode(role, message.value))
            order_id = item["order_id"]
            self.counted(role, item["event_type"]).inc()
        key = record_key(message)
        if key != order_id:
            raise KeyMismatch(f"record key {key!r} does not match order_id {order_id!r}")
        return item

    def apply(self, send: Send, record: Any, item: dict[str, Any] | AllocationResult, now: int) -> None:
        sla = self.sla
        partition = record.partition
        result = item if isinstance(item, AllocationResult) else None
        if result is not None:
            order_id, at = result.order_id, result.occurred_at
            key = order_id.encode()
            state = self.store.get(partition, key)
            if state is None:  # the inventory answers only lines it was asked about
                raise InvalidEvent(f"allocation result for unknown order {order_id!r}")
            before = self.before_of(state)
            kpi_before = self.kpis.before(partition, key, state)
            answered = frozenset(lid for lid, ln in state.lines.items() if ln.alloc_ack > 0)
            apply = partial(apply_allocation, state, result)
        else:
            order_id, at = item["order_id"], item["occurred_at"]
            if sla.observe(partition, at):  # event clock: the stream time moved, check first
                sla.check(partition, send, sla.now(partition))
            key = order_id.encode()
            state = self.store.get(partition, key)
            before = self.before_of(state) if state is not None else None
            kpi_before = self.kpis.before(partition, key, state)
            answered = None
            if state is None:
                state = OrderState(order_id)
            apply = partial(apply_event, state, item, now=now)
        sla_now = sla.now(partition)
        overdue = sla.may_be_overdue(partition, key, sla_now)
        outcome, step = apply_under_sla(state, apply, at, sla.policy, sla.kind, sla_now, check_before=overdue)
        if outcome.duplicate:
            METRICS.duplicates.inc()
            if step.before:  # breached before the duplicate: the index entries change
                sla.touch(partition, key)
        else:
            sla.touch(partition, key, step.pending)
        emission = emission_of(state, outcome, step, item)
        watched = self.case_facts(send, record, state, emission, item if result is None else None, at)
        self.emit(send, record, partition, key, state, emission, before)
        if emission.store:
            self.kpis.changed(partition, kpi_before, answered, state, item, now)
        elif watched:
            self.store.put(partition, key, state)

    def case_facts(
        self, send: Send, record: Any, state: OrderState, emission: Emission, cause: dict[str, Any] | None, at: int
    ) -> bool:
        """Tell the case agent (streams/processors/cases.py) what this transition opened and
        which of the order's cases it cleared; keep those a later state may clear. True when
        that changed the state (it must be stored)."""
        if not (emission.exceptions or emission.breaches or state.open_cases or (
            cause is not None and cause.get("event_type") == "OrderHoldApplied"
        )):
            return False
        opened = cases_raised(state, emission.exceptions, emission.breaches, cause)
        watched = [Case.from_list(c) for c in state.open_cases] + [c for c in opened if may_clear(c)]
        cleared = {c.case_id: c for c in cases_auto_resolved(watched, state, at)}
        headers = record.cause_header() if record is not None else None
        key = state.order_id.encode()  # the order's cases are keyed by it (Kind.ORDER)
        for case in opened:
            send(self.case_events_topic, key, opened_fact(case), None, headers)
        for case in cleared.values():
            send(self.case_events_topic, key, cleared_fact(case.case_id, case.note or "", at), None, headers)
        kept = [c.to_list() for c in watched if c.case_id not in cleared]
        if kept == state.open_cases:
            return False
        state.open_cases = kept
        return True

    def emit(
        self, send: Send, record: Any, partition: int, key: bytes, state: OrderState, emission: Emission,
        before: Before | None = None,
    ) -> None:
        """Send what the emission rules (tables/emission.py) listed, in their order, and store
        the state when they say so; `before` (the state before the input) makes the timeline
        entry of a published change."""
        for breach in emission.breaches:
            send(self.breaches_topic, key, self.codec.encode("sla-breaches", breach), None)
            METRICS.child(METRICS.sla_breaches, breach["milestone"]).inc()
            log.debug("SLA breach order_id=%s milestone=%s", state.order_id, breach["milestone"])
        for exc in emission.exceptions:
            send(self.exceptions_topic, key, self.codec.encode("exceptions", exc.to_dict()), None)
            METRICS.child(METRICS.business_exceptions, exc.code).inc()
            log.debug("business exception order_id=%s code=%s: %s", state.order_id, exc.code, exc.detail)
        if emission.status_cause is not None:
            emitted_at = self.publish_status(send, partition, key, state, emission.status_cause)
            if self.timeline_entries:
                entry = entry_list(before, state, emission.status_cause, emitted_at)
                if entry is not None:
                    state.timeline = append_stored(state.timeline, entry, self.timeline_entries)
        if emission.allocation:
            cause = record.cause_header()  # the inventory agent orders it by its cause's time
            for message in emission.allocation:
                send(self.requests_topic, message.sku.encode(), saga.encode(message), None, cause)
                METRICS.child(METRICS.allocation_messages, message.TYPE, "sent").inc()
        if emission.store:
            self.store.put(partition, key, state)

    def publish_status(self, send: Send, partition: int, key: bytes, state: OrderState, cause: Cause) -> int:
        """Publish the order's next status event; its `emitted_at`."""
        previous = state.last_status
        emitted_at = int(time.time() * 1000)
        record = status_event(state, cause, emitted_at=emitted_at)
        send(self.status_topic, key, self.codec.encode("order-status", record), None)
        status = record["status"]
        METRICS.child(METRICS.status_changes, status).inc()
        METRICS.event_to_status.observe(max(emitted_at - record["occurred_at"], 0) / 1000)
        if status != previous:
            METRICS.child(METRICS.status_transitions, previous or "NONE", status).inc()
            self.status_counts.moved(partition, state, previous, status)
            log.debug("order_id=%s status %s -> %s seq=%d", state.order_id, previous, status, record["seq"])
        self.notify(state.order_id)
        return emitted_at

    def breach_overdue(self, send: Send, partition: int, key: bytes, state: OrderState, now: int) -> bool:
        """For an SLA check: breach and publish what is overdue in the order's state."""
        with self.store.mutex:
            before = self.before_of(state)
            kpi_before = self.kpis.before(partition, key, state)
            records, raised = self.sla.breach(partition, key, state, now)
            if not records:
                return False
            emission = breached(state, records, raised)
            self.case_facts(send, None, state, emission, None, now)
            self.emit(send, None, partition, key, state, emission, before)  # stores the state
            self.kpis.changed(partition, kpi_before, None, state, None, int(time.time() * 1000))
        return True
