"""Exactly-once plumbing around Faust's transactions.

Faust runs one transactional producer per *source* partition (transactional id
`{app id}-{topic group}-{partition}`) and commits each source partition's offsets in that
producer's transaction. Its `TransactionManager.send` however picks the producer from the
*destination* partition of the record being sent. That is only right when the destination
topic is co-partitioned with the source; a record keyed differently (an exception keyed by SKU,
an allocation request keyed by SKU, a dead letter) would join another partition's transaction,
or find no producer at all when that partition belongs to another worker (docs/exactly-once.md
has what we found reading faust-streaming issues #177, #323, #440 and #517).

`SourcePartitionTransactions` routes every send made while processing an event to the
transaction of the partition the event came from. `acting_for` lets batch code (which handles
events of several partitions at once) say which event it is working for, so that table writes
land in that partition's RocksDB store and changelog, and sends in its transaction.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import faust
from faust.streams import _current_event, current_event
from faust.transport.consumer import TransactionManager


class SourcePartitionTransactions(TransactionManager):
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        event = current_event()
        if event is None:
            return await super().send(topic, key, value, partition, timestamp, headers)
        source = event.message
        group = self.app.assignor.group_for_topic(source.topic)
        tid = f"{self.app.conf.id}-{group}-{source.partition}"
        destination = self.consumer.key_partition(topic, key, partition)
        return await self.producer.send(
            topic, key, value, destination, timestamp, headers, transactional_id=tid
        )


def install(app: faust.App) -> None:
    """Make the app's transport build our transaction manager (before the consumer starts)."""
    app.transport.TransactionManager = SourcePartitionTransactions  # type: ignore[misc]


@contextmanager
def acting_for(event: faust.EventT) -> Iterator[None]:
    """Within the block, Faust treats `event` as the event being processed."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class CommitGate:
    """Keeps commits and batch processing apart, and flushes state stores inside each commit.

    Faust commits on a timer, concurrently with agents. A commit that lands while a batch is
    half processed would commit (in the transaction) records of events whose offsets are not
    committed yet; a crash then repeats them. Here a batch, including its acks, runs under the
    gate, and so does the commit, which first sends the stores' changelog records into the
    transactions and, once committed, persists them locally.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.lock = asyncio.Lock()
        self.stores: list[Any] = []
        self._installed = False
        self.failure: BaseException | None = None

    def register(self, store: Any) -> None:
        self.stores.append(store)

    def processing(self) -> asyncio.Lock:
        return self.lock

    def poison(self, exc: BaseException) -> None:
        """A batch failed half way: its state changes and records must never be committed.

        Its events are not acked, but the stores hold some of their changes and the open
        transactions some of their records; committing now would publish them. Every later
        commit fails instead, so the worker stops without committing: exactly-once aborts the
        open transactions, at-least-once re-reads from the last commit.
        """
        if self.failure is None:
            self.failure = exc

    async def sender(self) -> Callable[..., Awaitable[Any]]:
        """`send(topic, key, value, partition, headers=None)` through the right producer."""
        producer = await self.app.maybe_start_producer()

        async def send(
            topic: str, key: bytes | None, value: bytes | None, partition: int | None, headers: Any = None
        ) -> Any:
            return await producer.send(topic, key, value, partition, None, headers)

        return send

    def install(self) -> None:
        """Wrap the consumer's commit (call once the app has its consumer)."""
        if self._installed:
            return
        consumer = self.app.consumer
        original = consumer.commit

        async def gated_commit(*args: Any, **kwargs: Any) -> bool:
            async with self.lock:
                if self.failure is not None:
                    raise RuntimeError(f"not committing after a failed batch: {self.failure!r}")
                send = await self.sender()
                for store in self.stores:
                    await store.flush_changelog(send)
                try:
                    committed = await original(*args, **kwargs)
                except BaseException:
                    for store in self.stores:
                        store.discard()
                    raise
                if committed:
                    for store in self.stores:
                        await store.persist()
                return committed

        consumer.commit = gated_commit  # type: ignore[method-assign]
        self._installed = True
