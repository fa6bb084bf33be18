"""What the order and inventory agents share: one source topic over several co-partitioned
topics, two ways of receiving batches, the commit gate around each batch, and sends that join
the transaction of the partition each event came from.

Batches come one of two ways (`O2C_BULK_CONSUMER`):
- bulk (default): the worker's consumer hands over each fetch's records of the agent's topics
  in one call (streams/bulk_consumer.py) and the outputs leave as whole record batches
  (streams/batch_sends.py); Faust's per-record path (~66 µs a record) is skipped;
- agent: a Faust agent over the topics, batching with `stream.take_events`.
Both run the subclass's `handle(batch, send_for)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import perf_counter
from typing import Any, TypeVar

import faust

from streams import bulk_consumer
from streams.batch_sends import BatchedSends
from streams.eos import CommitGate
from streams.metrics import METRICS
from streams.settings import Settings
from streams.state_store import WriteBehindStore, raw_store

V = TypeVar("V")
SendFor = Callable[[Any], Callable[..., Awaitable[Any]]]


class Delivery:
    """A record handed over by the bulk consumer, shaped like the Faust event it replaces: what
    `in_event_time_order` and `acting_for` use of an event is its `.message`."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, message: Any) -> None:
        self.message = message


class BatchAgent:
    """Base of the agents; subclasses implement `handle`."""

    name = "o2c.agent"

    def __init__(self, app: faust.App, settings: Settings, gate: CommitGate, topics: Mapping[str, str]) -> None:
        """`topics`: full topic name -> role, all keyed alike and with the same partitions."""
        self.app = app
        self.settings = settings
        self.gate = gate
        self.role_of_topic = dict(topics)
        self._events_in: dict[tuple[str, str], Any] = {}
        self.batch_seconds = METRICS.consume_to_produce.labels(self.name)
        self.source = app.topic(
            *self.role_of_topic,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        self.sends: BatchedSends | None = None
        if settings.bulk_consumer:
            self.sends = BatchedSends(app)
            bulk_consumer.register_topics(app, self.source)
        else:
            app.agent(self.source, name=self.name)(self.process)

    def raw_table(
        self, name: str, help: str, decode: Callable[[bytes], V], encode: Callable[[V], bytes]
    ) -> tuple[faust.Table, WriteBehindStore[V]]:
        """The agent's RocksDB table and its write-behind store (`state_store.raw_store`)."""
        store = raw_store(
            self.app, self.gate, name, help, partitions=self.settings.partitions, decode=decode,
            encode=encode, max_cached=self.settings.state_cache_entries,
        )
        return store.table, store

    def bulk_handlers(self) -> dict[str, bulk_consumer.BulkHandler]:
        """Topic -> handler, for `bulk_consumer.install` (empty on the Faust agent path)."""
        return {topic: self.process_bulk for topic in self.role_of_topic} if self.sends else {}

    async def process_bulk(self, consumer: Any, messages: Sequence[Any]) -> None:
        """Bulk path: one fetch's records (already tracked by the consumer)."""
        assert self.sends is not None
        async with self.gate.processing():
            started = perf_counter()
            try:
                await self.process_batch([Delivery(m) for m in messages], self.sends)
                await self.sends.flush()
                self.batch_seconds.observe(perf_counter() - started)
            except BaseException as exc:
                self.gate.poison(exc)
                raise
            ack = consumer.ack
            for message in messages:
                ack(message)

    async def process(self, stream: faust.StreamT) -> None:
        async for batch in stream.take_events(self.settings.batch_size, within=self.settings.batch_window):
            async with self.gate.processing():
                started = perf_counter()
                await self.process_batch(batch)
                self.batch_seconds.observe(perf_counter() - started)
                for event in batch:
                    await stream.ack(event)

    async def process_batch(self, batch: Sequence[Any], sends: BatchedSends | None = None) -> None:
        if sends is None:
            faust_send = await self.gate.sender()  # Faust routes it by the current event

            def send_for(event: Any) -> Any:
                return faust_send
        else:

            def send_for(event: Any) -> Any:
                return sends.for_source(event.message.tp)

        await self.handle(batch, send_for)

    async def handle(self, batch: Sequence[Any], send_for: SendFor) -> None:
        raise NotImplementedError

    def counted(self, role: str, event_type: str) -> Any:
        """The `o2c_events_in` child for these labels (labels() is too slow per event)."""
        child = self._events_in.get((role, event_type))
        if child is None:
            child = self._events_in[role, event_type] = METRICS.events_in.labels(role, event_type)
        return child


def record_key(message: Any) -> str | None:
    return message.key.decode("utf-8", "replace") if message.key is not None else None
