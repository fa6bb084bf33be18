"""A write-behind layer over a Faust RocksDB table: state changes reach the changelog and RocksDB
once per key per commit, inside the commit, instead of once per event.

Why not `table[key] = value` per event:
- speed: Faust sends one changelog record per write (40-60 µs each); an order touched by ten
  events in a commit interval needs one record, not ten (Quix Streams batches the same way);
- exactly-once: Faust queues changelog records in a buffer that its transaction commit does not
  flush, and writes RocksDB immediately. After a SIGKILL the local store can then hold writes
  whose transaction was aborted (and a committed offset can miss its changelog record), so a
  restarted worker would skip or double-apply events.

Here, between commits, changed values live in memory (`dirty`). `flush_changelog` sends them to
the changelog inside each partition's open transaction, just before the offsets are committed in
the same transaction; only after that partition's transaction committed does `persist` write
them to RocksDB, together with the changelog offset, in one atomic write batch. A crash at any
point leaves RocksDB at or behind the last committed transaction, and Faust's recovery replays
the committed changelog tail from the persisted offset.

The persisted offset is that of the transaction's commit marker, the record right after the
last value sent (only this partition's producer writes its changelog partition): everything up
to the end of the partition is then known to be in RocksDB. Faust's own recovery target is the
partition's end offset minus one, always a marker in a transactional changelog; a store that
persisted its last value's offset would leave it waiting for a record that never comes, until
its fallback (two idle 5 s polls, faust-streaming issue #47) gives up. streams/eos.py gives
recovery better targets; with the marker's offset a clean restart reads nothing either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import faust
from faust.types import TP
from rocksdict import WriteBatch

log = logging.getLogger("o2c.state")

V = TypeVar("V")


class WriteBehindStore(Generic[V]):
    """Per-partition cache of decoded values over a RocksDB-backed Faust table (raw bytes)."""

    def __init__(
        self,
        table: faust.Table,
        *,
        decode: Callable[[bytes], V],
        encode: Callable[[V], bytes],
        max_cached: int = 50_000,
    ) -> None:
        self.table = table
        self.decode = decode
        self.encode = encode
        self.max_cached = max_cached
        self.cache: dict[int, dict[bytes, V]] = {}
        self.dirty: dict[int, set[bytes]] = {}
        self._pending: dict[int, dict[bytes, bytes]] = {}
        self._sent: list[tuple[int, Any]] = []
        self.on_discard: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ reads and writes

    def get(self, partition: int, key: bytes) -> V | None:
        """The current value: this commit interval's, else RocksDB's (decoded once, then cached)."""
        cache = self.cache.setdefault(partition, {})
        value = cache.get(key)
        if value is None:
            raw = self._db(partition).get(key)
            if raw is None:
                return None
            value = cache[key] = self.decode(raw)
        return value

    def put(self, partition: int, key: bytes, value: V) -> None:
        self.cache.setdefault(partition, {})[key] = value
        self.dirty.setdefault(partition, set()).add(key)

    def lookup(self, key: bytes) -> V | None:
        """Read for queries (no partition known): cache first, then every local partition DB."""
        for cache in self.cache.values():
            value = cache.get(key)
            if value is not None:
                return value
        raw = self.table.data._get_bucket_for_key(key)  # type: ignore[attr-defined]
        return self.decode(raw[1]) if raw is not None else None

    def items(self, partition: int | None = None) -> Iterator[tuple[bytes, V]]:
        """Every value held by this worker's active partitions, or by one of them (statistics)."""
        store = self.table.data
        seen: set[bytes] = set()
        for p, cache in list(self.cache.items()):
            if partition is not None and p != partition:
                continue
            for key, value in cache.items():
                seen.add(key)
                yield key, value
        for p, db in list(store._dbs.items()):  # type: ignore[attr-defined]
            if not self._is_active(p) or (partition is not None and p != partition):
                continue
            for key, raw in db.items():
                if key == store.offset_key or key in seen:  # type: ignore[attr-defined]
                    continue
                yield key, self.decode(raw)

    # ------------------------------------------------------------------ commit protocol

    async def flush_changelog(self, send: Callable[..., Any]) -> None:
        """Send each dirty key's latest value to the changelog (inside the open transactions)."""
        topic = self.table.changelog_topic.get_topic_name()
        for partition, keys in self.dirty.items():
            cache = self.cache[partition]
            pending = self._pending.setdefault(partition, {})
            for key in keys:
                raw = pending[key] = self.encode(cache[key])
                fut = await send(topic, key, raw, partition)
                self._sent.append((partition, fut))
        self.dirty.clear()

    async def persist(self, partitions: set[int] | None = None, *, transactional: bool = False) -> None:
        """After a successful commit: write flushed values and changelog offsets to RocksDB.

        `partitions`: those whose changelog transaction committed (None: all flushed ones);
        the others keep their values in memory until a later commit covers them.
        `transactional`: the changelog is written in transactions, so the persisted offset is
        the commit marker's (last value's offset + 1), not the last value's.
        """
        done = set(self._pending) if partitions is None else set(partitions) & set(self._pending)
        offsets: dict[int, int] = {}
        sent, self._sent = self._sent, []
        for partition, fut in sent:
            if partition not in done:
                self._sent.append((partition, fut))
                continue
            metadata = await fut
            offsets[partition] = max(offsets.get(partition, -1), metadata.offset)
        store = self.table.data
        for partition in done:
            values = self._pending.pop(partition)
            batch = WriteBatch(raw_mode=True)
            for key, raw in values.items():
                batch.put(key, raw)
            if partition in offsets:
                offset = offsets[partition] + 1 if transactional else offsets[partition]
                batch.put(store.offset_key, str(offset).encode())  # type: ignore[attr-defined]
            self._db(partition).write(batch)
            log.debug(
                "persisted partition=%s keys=%d offset=%s", partition, len(values), offsets.get(partition)
            )
        # Decoded values stay cached across commits (they equal RocksDB's now) while they fit;
        # past the bound, committed partitions are dropped and re-read on demand. Values of
        # transactions not committed yet always stay (they are newer than RocksDB).
        if sum(map(len, self.cache.values())) > self.max_cached:
            for partition in list(self.cache):
                if partition not in self._pending and partition not in self.dirty:
                    del self.cache[partition]

    def active_partitions(self) -> list[int]:
        """Partitions of the table this worker actively owns and holds locally."""
        return sorted(p for p in list(self.table.data._dbs) if self._is_active(p))  # type: ignore[attr-defined]

    def discard(self, partitions: set[int] | None = None) -> None:
        """Forget uncommitted values (on revocation or a failed commit); `on_discard` callbacks
        learn that values they derived from may be gone."""
        for callback in self.on_discard:
            callback()
        for store in (self.cache, self.dirty, self._pending):
            for partition in list(store):
                if partitions is None or partition in partitions:
                    del store[partition]
        self._sent = [(p, f) for p, f in self._sent if partitions is not None and p not in partitions]

    def uncommitted_partitions(self) -> set[int]:
        """Partitions holding values no commit has covered yet."""
        return {p for p, keys in self.dirty.items() if keys} | set(self._pending)

    @property
    def changelog_topic_name(self) -> str:
        return self.table.changelog_topic.get_topic_name()

    # ------------------------------------------------------------------ helpers

    def _db(self, partition: int) -> Any:
        return self.table.data._db_for_partition(partition)  # type: ignore[attr-defined]

    def _is_active(self, partition: int) -> bool:
        tp = TP(self.table.changelog_topic.get_topic_name(), partition)
        return self.table.app.assignor.is_active(tp)


def raw_store(
    app: faust.App,
    gate: Any,
    name: str,
    help: str,
    *,
    partitions: int,
    decode: Callable[[bytes], V],
    encode: Callable[[V], bytes],
    max_cached: int = 50_000,
) -> WriteBehindStore[V]:
    """A RocksDB table of our own bytes behind a write-behind store that `gate` (the commit
    gate, streams/eos.py) flushes inside every commit. The table is `store.table`."""
    table = app.Table(name, partitions=partitions, help=help)
    # Faust picks JSON for tables without model types; the values are our own bytes.
    table.key_serializer = table.value_serializer = "raw"
    table.changelog_topic = table._new_changelog_topic()  # rebuilt with raw serializers
    store: WriteBehindStore[V] = WriteBehindStore(table, decode=decode, encode=encode, max_cached=max_cached)
    gate.register(store)
    return store
