"""What the order and inventory agents share: their topics (co-partitioned, one task per partition
number), their RocksDB stores, and the event counters. The runtime (streams/runtime/engine.py)
drives them: `process` a batch of records in time order, `assigned`/`revoked` partitions,
`punctuate` on a timer, `committed` after each commit, all on the runtime thread.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from streams.contracts.schemas import CodecError
from streams.metrics import METRICS
from streams.runtime.partitioner import partition_of
from streams.runtime.restore import spread as spread  # re-exported: helper processes' shares
from streams.runtime.rocks import (
    PartitionIndexes as PartitionIndexes,  # re-exported: the processors' interface
)
from streams.runtime.rocks import open_index_db as open_index_db
from streams.runtime.rocks import rocks_options
from streams.runtime.store import PartitionedStore, Split
from streams.settings import Settings

V = TypeVar("V")


class BatchAgent:
    """Base of the agents; subclasses implement `process`."""

    name = "o2c.agent"
    punctuate_interval: float | None = None
    internal: Collection[str] = ()  # of `topics`, those another agent writes (see Task in the runtime)
    emits: Mapping[str, Collection[str]] = {}  # internal topic written -> topics whose records cause it

    def __init__(self, settings: Settings, topics: Mapping[str, str]) -> None:
        """`topics`: full topic name -> role, all keyed alike and with the same partitions."""
        self.settings = settings
        self.topics = dict(topics)
        self.stores: list[PartitionedStore[Any]] = []
        self._events_in: dict[tuple[str, str], Any] = {}

    def new_store(
        self, name: str, decode: Callable[[bytes], V], encode: Callable[[V], bytes], split: Split[V] | None = None
    ) -> PartitionedStore[V]:
        store = table_store(self.settings, name, decode, encode, split)
        self.stores.append(store)
        return store

    def decode(self, record: Any) -> Any:
        """The record's event (raises CodecError for bytes or keys that do not fit)."""
        raise NotImplementedError

    def event_time(self, record: Any) -> int:
        """Business time of a record, for the runtime's merge of the agent's topics (SPEC's
        `occurred_at`; internal records keep their cause's time). The record is decoded here,
        once, and `item_of` hands the event (or the error) to `process`."""
        try:
            item = record.decoded = self.decode(record)
        except CodecError as exc:
            record.decoded = exc  # dead-lettered in its place when processed
            return record.timestamp
        if not record.internal and isinstance(item, dict):
            at = item.get("occurred_at")
            if at is not None:
                return at
        return record.timestamp

    def item_of(self, record: Any) -> Any:
        item = getattr(record, "decoded", None)
        if item is None:  # not buffered by the runtime (tests drive `process` directly)
            return self.decode(record)
        if isinstance(item, CodecError):
            raise item
        return item

    def process(self, records: Sequence[Any], out: Any) -> None:
        raise NotImplementedError

    def assigned(self, partitions: set[int]) -> None:
        pass

    def revoked(self, partitions: set[int]) -> None:
        pass

    def punctuate(self, out: Any) -> None:
        pass

    def before_commit(self) -> None:
        """A commit begins: bring derived state up to date (before the stores flush)."""

    def committed(self) -> None:
        pass

    def counted(self, role: str, event_type: str) -> Any:
        """The `o2c_events_in` child for these labels (labels() is too slow per event)."""
        child = self._events_in.get((role, event_type))
        if child is None:
            child = self._events_in[role, event_type] = METRICS.events_in.labels(role, event_type)
        return child


def table_store(
    settings: Settings,
    name: str,
    decode: Callable[[bytes], V],
    encode: Callable[[V], bytes],
    split: Split[V] | None = None,
) -> PartitionedStore[V]:
    """Table `name`: RocksDB under the data dir, changelog `<app_id>-<name>-changelog`, keys
    partitioned as Kafka's default partitioner does."""
    partitions = settings.partitions
    return PartitionedStore(
        name,
        settings.internal_topic(f"{name}-changelog"),
        settings.data_dir / settings.app_id / "state" / name,
        decode=decode,
        encode=encode,
        partition_of=lambda key: partition_of(key, partitions),
        max_cached=settings.state_cache_entries,
        options=local_db_options(settings),
        split=split,
        memory_mb=settings.rocksdb_memory_mb,
    )


def local_db_options(settings: Settings) -> Callable[[], Any]:
    """RocksDB options for a processor's local databases (tables, indexes): the worker's shared
    memory budget (streams/runtime/rocks.py)."""
    return lambda: rocks_options(settings.rocksdb_memory_mb)


def record_key(message: Any) -> str | None:
    return message.key.decode("utf-8", "replace") if message.key is not None else None
