"""The order agent: one stream over the co-partitioned orders, shipments and payments topics,
joined into one `OrderState` per order (tables.order) kept in a RocksDB table.

Per batch, under the commit gate:
  decode -> apply_event -> send exceptions / status events / dead letters -> remember the state.
States are written once per key per commit by the write-behind store (streams/state_store.py),
and every record this batch sends joins the transaction of the partition its event came from.
A status event is sent per changing event (not per batch), so `seq` is 1, 2, 3... per order
whatever the batching.

Batches come one of two ways (`O2C_BULK_CONSUMER`):
- bulk (default): the worker's consumer hands over each fetch's records of the three topics
  in one call (streams/bulk_consumer.py) and the outputs leave as whole record batches
  (streams/batch_sends.py); Faust's per-record path (~66 µs a record) is skipped;
- agent: a Faust agent over the three topics, batching with `stream.take_events`.
Both run the same `process_batch`.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import faust

from streams import bulk_consumer
from streams.batch_sends import BatchedSends
from streams.codec import Codec, CodecError
from streams.deadletter import dead_letter
from streams.eos import CommitGate, acting_for
from streams.flat import to_flat
from streams.metrics import METRICS
from streams.settings import Settings
from streams.state_store import WriteBehindStore
from streams.watch import Watchers
from tables.order import InvalidEvent, OrderState, apply_event, status_event

log = logging.getLogger("o2c.orders")

ORDER_ROLES = ("orders", "shipments", "payments")


class KeyMismatch(CodecError):
    """The record's order_id differs from the Kafka key: it sits on the wrong partition."""


class Delivery:
    """A record handed over by the bulk consumer, shaped like the Faust event it replaces: what
    `in_event_time_order` and `acting_for` use of an event is its `.message`."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, message: Any) -> None:
        self.message = message


class OrderAgent:
    def __init__(self, app: faust.App, settings: Settings, codec: Codec, gate: CommitGate) -> None:
        self.app = app
        self.settings = settings
        self.codec = codec
        self.gate = gate
        self.watchers = Watchers()
        self._events_in: dict[tuple[str, str], Any] = {}
        self.role_of_topic = {settings.topic(role): role for role in ORDER_ROLES}
        self.status_topic = settings.topic("order-status")
        self.exceptions_topic = settings.topic("exceptions")
        self.table = app.Table(
            "orders",
            partitions=settings.partitions,
            help="OrderState bytes by order_id",
        )
        # Faust picks JSON for tables without model types; the values are our own bytes.
        self.table.key_serializer = self.table.value_serializer = "raw"
        self.table.changelog_topic = self.table._new_changelog_topic()  # rebuilt with raw serializers
        self.store: WriteBehindStore[OrderState] = WriteBehindStore(
            self.table,
            decode=OrderState.from_bytes,
            encode=OrderState.to_bytes,
            max_cached=settings.state_cache_entries,
        )
        gate.register(self.store)
        self.source = app.topic(
            *self.role_of_topic,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        if settings.bulk_consumer:
            self.sends = BatchedSends(app)
            bulk_consumer.install(app, self.role_of_topic, self.process_bulk, batch_size=settings.batch_size)
            bulk_consumer.register_topics(app, self.source)
        else:
            app.agent(self.source, name="o2c.orders")(self.process)

    async def process_bulk(self, consumer: Any, messages: Sequence[Any]) -> None:
        """Bulk path: one fetch's records of the three topics (already tracked by the consumer)."""
        async with self.gate.processing():
            try:
                await self.process_batch([Delivery(m) for m in messages], self.sends)
                await self.sends.flush()
            except BaseException as exc:
                self.gate.poison(exc)
                raise
            ack = consumer.ack
            for message in messages:
                ack(message)

    async def process(self, stream: faust.StreamT) -> None:
        async for batch in stream.take_events(self.settings.batch_size, within=self.settings.batch_window):
            async with self.gate.processing():
                await self.process_batch(batch)
                for event in batch:
                    await stream.ack(event)

    async def process_batch(self, batch: Sequence[faust.EventT], sends: BatchedSends | None = None) -> None:
        if sends is None:
            faust_send = await self.gate.sender()  # Faust routes it by the current event

            def send_for(event: Any) -> Any:
                return faust_send
        else:

            def send_for(event: Any) -> Any:
                return sends.for_source(event.message.tp)

        now = int(time.time() * 1000)
        decoded: list[tuple[faust.EventT, dict[str, Any]]] = []
        for event in batch:
            try:
                decoded.append((event, self.decode(event.message)))
            except CodecError as exc:
                with acting_for(event):
                    await dead_letter(send_for(event), self.settings, event.message, exc)
        for event, flat in in_event_time_order(decoded):
            send = send_for(event)
            with acting_for(event):
                try:
                    await self.apply(send, event.message.partition, flat, now)
                except InvalidEvent as exc:
                    await dead_letter(send, self.settings, event.message, exc)

    def decode(self, message: Any) -> dict[str, Any]:
        role = self.role_of_topic[message.topic]
        flat = to_flat(role, self.codec.decode(role, message.value))
        key = message.key.decode("utf-8", "replace") if message.key is not None else None
        if key != flat["order_id"]:
            raise KeyMismatch(f"record key {key!r} does not match order_id {flat['order_id']!r}")
        self.counted(role, flat["event_type"]).inc()
        return flat

    async def apply(self, send: Any, partition: int, flat: dict[str, Any], now: int) -> None:
        order_id = flat["order_id"]
        key = order_id.encode()
        state = self.store.get(partition, key) or OrderState(order_id)
        outcome = apply_event(state, flat, now=now)
        if outcome.duplicate:
            METRICS.duplicates.inc()
            return
        for exc in outcome.exceptions:
            record = exc.to_dict()
            await send(self.exceptions_topic, key, self.codec.encode("exceptions", record), None)
            METRICS.business_exceptions.labels(exc.code).inc()
            log.debug("business exception order_id=%s code=%s: %s", order_id, exc.code, exc.detail)
        if outcome.publish:
            previous = state.last_status
            record = status_event(state, flat, emitted_at=int(time.time() * 1000))
            await send(self.status_topic, key, self.codec.encode("order-status", record), None)
            METRICS.status_changes.labels(record["status"]).inc()
            if record["status"] != previous:
                log.debug(
                    "order_id=%s status %s -> %s seq=%d", order_id, previous, record["status"], record["seq"]
                )
            self.watchers.notify(order_id)
        if outcome.changed:
            self.store.put(partition, key, state)

    def counted(self, role: str, event_type: str) -> Any:
        """The `o2c_events_in` child for these labels (labels() is too slow per event)."""
        child = self._events_in.get((role, event_type))
        if child is None:
            child = self._events_in[role, event_type] = METRICS.events_in.labels(role, event_type)
        return child

    # ------------------------------------------------------------------ queries

    def lookup(self, order_id: str) -> OrderState | None:
        return self.store.lookup(order_id.encode())


def in_event_time_order(
    decoded: Sequence[tuple[faust.EventT, dict[str, Any]]],
) -> Iterator[tuple[faust.EventT, dict[str, Any]]]:
    """Per partition, merge the three topics' records by `occurred_at`, keeping each topic's order.

    Faust hands over records topic chunk by topic chunk, so after a restart or under lag a batch
    can hold an order's invoice ahead of the shipment it bills. Choosing the record with the
    lowest event time next, as Kafka Streams does within a task, applies them in business order
    whenever both are in the batch (each source's own order is never changed).
    """
    runs: dict[int, dict[str, list[tuple[faust.EventT, dict[str, Any]]]]] = {}
    for item in decoded:
        message = item[0].message
        runs.setdefault(message.partition, {}).setdefault(message.topic, []).append(item)
    for topics in runs.values():
        if len(topics) == 1:
            yield from next(iter(topics.values()))
        else:
            yield from heapq.merge(*topics.values(), key=lambda item: item[1]["occurred_at"])
