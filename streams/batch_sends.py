"""Sends of one batch, gathered per destination partition and handed to aiokafka as whole
record batches, in the transaction of the partition each source event came from.

Why: a record sent through Faust (`app.producer.send` -> TransactionManager -> aiokafka
`send`) costs 35-40 µs: metadata wait, partitioner, accumulator lookup and a lock per record.
The order agent sends ~1.25 records per event, so that was a third of its time. aiokafka can
take a ready-made batch instead (`create_batch` / `BatchBuilder.append` / `send_batch`): the
per-record cost drops to the append, and the rest is paid once per batch.

Which producer: with exactly-once, Faust runs one transactional producer per source partition
(`{app id}-{topic group}-{partition}`, streams/eos.py explains why records must join the
source partition's transaction, not the destination's); we take it from Faust's aiokafka
Producer (`_transaction_producers`) and hold Faust's per-transaction lock while handing over a
batch, so it never interleaves with a commit of that transaction. With at-least-once every
record goes through the plain producer, which Faust flushes before it commits offsets.

A batch must be `flush`ed before its events are acked (still under the commit gate): the
commit then sends its offsets after these records in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.exceptions import ProducerSendError
from faust.types import TP

log = logging.getLogger("o2c.sends")

Send = Callable[..., Awaitable[None]]

_PARTITION_CACHE_LIMIT = 200_000


class BatchedSends:
    """Collects `send(topic, key, value, partition, headers=None)` calls into record batches."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._partitions: dict[tuple[str, bytes], int] = {}  # (topic, key) -> partition
        self._topic_partitions: dict[str, tuple[Any, list[int], list[int]]] = {}
        # (transactional id or None, topic, partition) -> (producer, builder)
        self._open: dict[tuple[str | None, str, int], tuple[Any, Any]] = {}
        self._senders: dict[TP, Send] = {}
        self.failure: BaseException | None = None

    # ------------------------------------------------------------------ per source partition

    def for_source(self, tp: TP) -> Send:
        """The `send` function for records caused by an event of source partition `tp`."""
        send = self._senders.get(tp)
        if send is None:
            send = self._senders[tp] = self._make_sender(tp)
        return send

    def _make_sender(self, source: TP) -> Send:
        tid: str | None = None
        # Asked here, not once at start: `app.in_transaction` is False until the app runs in a
        # worker, i.e. whenever the agent is built (records would silently leave untransacted).
        if self.app.in_transaction:
            group = self.app.assignor.group_for_topic(source.topic)
            tid = f"{self.app.conf.id}-{group}-{source.partition}"

        async def send(
            topic: str, key: bytes | None, value: bytes | None, partition: int | None, headers: Any = None
        ) -> None:
            if tid is not None:  # the revoke handler aborts transactions no commit covered
                self.app.consumer.transactions.unfinished.add(tid)
            if partition is None:
                partition = await self.partition_for(topic, key)
            slot = (tid, topic, partition)
            opened = self._open.get(slot)
            if opened is None:
                opened = self._open[slot] = self._new_builder(tid)
            producer, builder = opened
            if builder.append(key=key, value=value, timestamp=None, headers=headers or []) is None:
                await self._send_batch(tid, producer, builder, topic, partition)  # full
                opened = self._open[slot] = self._new_builder(tid)
                opened[1].append(key=key, value=value, timestamp=None, headers=headers or [])

        return send

    # ------------------------------------------------------------------ batches

    async def flush(self) -> None:
        """Hand every open batch to its producer (call before acking the events)."""
        if self.failure is not None:
            raise ProducerSendError(f"an earlier record batch failed: {self.failure!r}")
        opened, self._open = self._open, {}
        for (tid, topic, partition), (producer, builder) in opened.items():
            await self._send_batch(tid, producer, builder, topic, partition)
        self._senders.clear()  # producers can change with the next rebalance
        self._topic_partitions.clear()  # and so can the partitions available

    def _producer(self, tid: str | None) -> Any:
        faust_producer = self.app.producer
        if tid is None:
            return faust_producer._ensure_producer()  # type: ignore[attr-defined]
        producer = faust_producer._transaction_producers.get(tid)  # type: ignore[attr-defined]
        if producer is None:
            raise ProducerSendError(f"No transaction producer found for : {tid}")
        return producer

    def _new_builder(self, tid: str | None) -> tuple[Any, Any]:
        producer = self._producer(tid)
        return producer, producer.create_batch()

    async def _send_batch(self, tid: str | None, producer: Any, builder: Any, topic: str, partition: int) -> None:
        builder.close()
        if tid is None:
            future = await producer.send_batch(builder, topic, partition=partition)
        else:
            async with self.app.producer._trn_locks[tid]:  # type: ignore[attr-defined]
                future = await producer.send_batch(builder, topic, partition=partition)
        future.add_done_callback(self._on_delivered)

    def _on_delivered(self, future: Any) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None and self.failure is None:
            log.error("record batch failed: %r", exc)
            self.failure = exc

    # ------------------------------------------------------------------ partitioning

    async def partition_for(self, topic: str, key: bytes | None) -> int:
        """The default partitioner's choice for `key`, as aiokafka's `send` would make it.

        Cached per key, and the topic's partition list once per batch: aiokafka rebuilds the
        list of available partitions on every call, which was most of the 8 µs it took."""
        if key is not None:
            cached = self._partitions.get((topic, key))
            if cached is not None:
                return cached
        partitions = self._topic_partitions.get(topic)
        if partitions is None:
            producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
            await producer.client._wait_on_metadata(topic)
            known = producer._metadata.partitions_for_topic(topic)
            available = producer._metadata.available_partitions_for_topic(topic)
            partitions = self._topic_partitions[topic] = (
                producer._partitioner, sorted(known), sorted(available)
            )
        partitioner, all_partitions, available = partitions
        partition = partitioner(key, all_partitions, available)
        if key is not None:
            if len(self._partitions) >= _PARTITION_CACHE_LIMIT:
                self._partitions.clear()
            self._partitions[(topic, key)] = partition
        return partition
