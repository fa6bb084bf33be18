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

import weakref
from collections.abc import Iterator
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
