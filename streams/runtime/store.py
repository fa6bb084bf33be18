"""A partitioned key-value store: RocksDB per partition, a changelog topic as its durable copy,
and a write-behind layer that makes both change once per key per commit.

Between commits changed values live in memory (`dirty`). At a commit the runtime calls
`flush_changelog`, which produces each dirty key's latest value to the changelog partition inside
the open transaction; once that transaction committed, `persist` writes the same values to RocksDB
together with the changelog position (one atomic write batch). A crash at any point leaves RocksDB
at or behind the last committed transaction, and `restore` replays the committed changelog tail
from the persisted position. A failed or revoked transaction is `discard`ed: memory goes back to
what RocksDB holds. A value that grows without bound is stored `Split`: a head and one record
per part, of which a commit writes those that changed.

Threads: the runtime thread is the only writer. HTTP handlers read (`lookup`) from the event loop
thread: a dict lookup and a RocksDB get, both safe against the writer; a value object the writer
is changing at that moment is read under `mutex` (held by the processors per event).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from rocksdict import Options, Rdict, WriteBatch

from streams.runtime.rocks import rocks_options

log = logging.getLogger("o2c.state")

V = TypeVar("V")
OFFSET_KEY = b"__o2c_changelog_position__"
"""RocksDB key of the changelog position: every changelog record below it is in the DB."""
PART = b"\x1f"
"""Separates a split value's key from its parts' suffixes (`key 0x1F suffix`), see `Split`."""
MAX_REPLAYED_KEYS = 100_000
"""Keys a partition's replay remembers for `take_replayed`; beyond, derived data is rebuilt."""
_POSITION = object()  # `note_replayed`: the start is the position RocksDB holds


@dataclass(frozen=True)
class Split(Generic[V]):
    """How a store keeps a value that grows without bound (a hot SKU's open lines) as a head
    record under its key plus one record per part under `key 0x1F suffix`: no record outgrows
    Kafka's 1 MB limit, and a commit writes only the parts whose bytes changed (a part that
    disappeared is deleted: a tombstone in the changelog)."""

    parts: Callable[[V], tuple[bytes, dict[bytes, bytes]]]  # value -> head, {suffix: part}
    join: Callable[[bytes, Iterable[bytes]], V]  # head, parts (in key order) -> value
    # value -> head and the parts changed since `parts` or `changes` was last called on it,
    # or since `join` made it ({suffix: part, or None: gone}); None: unknown, call `parts`
    changes: Callable[[V], tuple[bytes, dict[bytes, bytes | None]] | None] | None = None


class PartitionedStore(Generic[V]):
    """Values of one table, by partition; decoded values are cached while they fit."""

    def __init__(
        self,
        name: str,
        changelog_topic: str,
        directory: Path,
        *,
        decode: Callable[[bytes], V],
        encode: Callable[[V], bytes],
        partition_of: Callable[[bytes], int],
        max_cached: int = 50_000,
        options: Callable[[], Options] = lambda: rocks_options(None),
        split: Split[V] | None = None,
        memory_mb: int | None = None,
    ) -> None:
        """`memory_mb`: the budget `options` draw on (rocks.py), for the restore helpers."""
        self.name = name
        self.changelog_topic = changelog_topic
        self.directory = Path(directory)
        self.decode = decode
        self.encode = encode
        self.partition_of = partition_of
        self.max_cached = max_cached
        self.options = options
        self.memory_mb = memory_mb
        self.split = split
        # split values: per partition and key, the parts as last flushed or read (what the
        # changelog and, after the commit, RocksDB hold), to write only the changed ones, and
        # the value object they were taken from or read into (its `changes` count from them)
        self._parts: dict[int, dict[bytes, tuple[Any, dict[bytes, bytes]]]] = {}
        self.mutex = threading.RLock()
        self.dbs: dict[int, Rdict] = {}  # open partitions (active or restoring)
        self.active: set[int] = set()  # partitions this worker processes now
        self.deactivations = 0  # partitions given up so far (`lookup_owned` notices one mid-read)
        self.standby: set[int] = set()  # partitions kept up to date from the changelog only
        self.standby_current: set[int] = set()  # standbys that reached the changelog's end once
        self.cache: dict[int, dict[bytes, V]] = {}
        self.dirty: dict[int, set[bytes]] = {}
        self._pending: dict[int, dict[bytes, bytes | None]] = {}  # None: a deleted part  # flushed, waiting for the commit
        self._last_sent: dict[int, int] = {}  # partition -> offset of the last changelog record
        self.on_discard: list[Callable[[], None]] = []
        # With `track_replays`: per partition, the position before changelog records were first
        # replayed into it (a restore, a standby) and the keys they wrote (None: too many).
        self.track_replays = False
        self._replayed: dict[int, tuple[int | None, set[bytes] | None]] = {}

    # ------------------------------------------------------------------ partitions

    def open(self, partition: int) -> Rdict:
        db = self.dbs.get(partition)
        if db is None:
            path = self.directory / str(partition)
            path.parent.mkdir(parents=True, exist_ok=True)
            db = self.dbs[partition] = Rdict(str(path), self.options())
        return db

    def deactivate(self, partition: int) -> None:
        """Stop processing the partition: forget its memory, keep its DB open (a standby)."""
        self.active.discard(partition)
        self.deactivations += 1
        for held in (self.cache, self.dirty, self._pending, self._last_sent, self._parts):
            held.pop(partition, None)

    def close(self, partition: int) -> None:
        """Forget the partition's memory and close its DB (the files stay for a later return)."""
        self.deactivate(partition)
        self._replayed.pop(partition, None)
        self.standby.discard(partition)
        self.standby_current.discard(partition)
        db = self.dbs.pop(partition, None)
        if db is not None:
            db.close()

    def wipe(self, partition: int) -> None:
        """Delete the partition's local copy (its changelog is corrupt or behind the DB)."""
        self.close(partition)
        shutil.rmtree(self.directory / str(partition), ignore_errors=True)

    def position(self, partition: int) -> int | None:
        """Changelog offset to restore from (None: nothing persisted yet)."""
        raw = self.open(partition).get(OFFSET_KEY)
        return int(raw) if raw is not None else None

    def restore_batch(self, partition: int, records: list[tuple[bytes, bytes | None]], position: int) -> None:
        """Apply changelog records (None value: a tombstone) and the new position atomically."""
        self.note_replayed(partition, [key for key, _ in records])
        batch = WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(OFFSET_KEY, str(position).encode())
        self.open(partition).write(batch)

    def note_replayed(self, partition: int, keys: Iterable[bytes] | None, start: Any = _POSITION) -> None:
        """Remember changelog records replayed into the partition (for `take_replayed`): their
        `keys` (None: too many to list), and, on the first call since the last take, the position
        before them (`start`, else read from RocksDB: call before writing the new one)."""
        if not self.track_replays:
            return
        before = self._replayed.get(partition)
        if before is None:
            before = (self.position(partition) if start is _POSITION else start, set())
        first, known = before
        if known is not None and keys is not None:
            known.update(keys)
            if len(known) > MAX_REPLAYED_KEYS:
                known = None
        else:
            known = None
        self._replayed[partition] = (first, known)

    def take_replayed(self, partition: int) -> tuple[int | None, set[bytes] | None] | None:
        """What changelog replays wrote into the partition since the last call: the position
        before the first of them and the keys written (None: more than MAX_REPLAYED_KEYS);
        None when nothing was replayed. Lets derived data (the SLA index) catch up on the
        tail instead of being rebuilt from every value."""
        return self._replayed.pop(partition, None)

    # ------------------------------------------------------------------ reads and writes

    def get(self, partition: int, key: bytes) -> V | None:
        """The current value: this commit interval's, else RocksDB's (decoded once, then cached)."""
        cache = self.cache.get(partition)
        if cache is None:
            cache = self.cache[partition] = {}
        value = cache.get(key)
        if value is None:
            db = self.dbs[partition]
            if self.split is None:
                raw = db.get(key)
                if raw is None:
                    return None
                value = cache[key] = self.decode(raw)
            else:
                read = _read_split(db, key)
                if read is None:
                    return None
                head, parts = read
                value = cache[key] = self.split.join(head, parts.values())
                self._parts.setdefault(partition, {})[key] = (value, parts)
        return value

    def put(self, partition: int, key: bytes, value: V) -> None:
        self.cache.setdefault(partition, {})[key] = value
        self.dirty.setdefault(partition, set()).add(key)

    def owns(self, key: bytes) -> bool:
        return self.partition_of(key) in self.active

    def lookup(self, key: bytes) -> V | None:
        """For queries from another thread: the key's value if its partition is active here."""
        return self.lookup_owned(key)[1]

    def lookup_owned(self, key: bytes, partition: int | None = None) -> tuple[bool, V | None]:
        """`lookup` that tells "not processed here" apart from "no such key": (False, None) when
        the key's partition is not active here, or stopped being so during the read (a
        rebalance on the runtime thread while a query waited for the mutex): then a missing
        value proves nothing, where a 404 would deny a key that exists. `partition`: for a
        composite key stored on its owner's partition, not its own hash's."""
        if partition is None:
            partition = self.partition_of(key)
        given_up = self.deactivations
        if partition not in self.active:
            return False, None
        value = self.lookup_at(partition, key)
        if value is None and (self.deactivations != given_up or partition not in self.active):
            return False, None
        return True, value

    def lookup_at(self, partition: int, key: bytes) -> V | None:
        """The key's value from the cache or RocksDB if `partition` is active here."""
        if partition not in self.active:
            return None
        cache = self.cache.get(partition)
        value = cache.get(key) if cache is not None else None
        if value is not None:
            return value
        return self._read(self.dbs.get(partition), key)

    def lookup_standby(self, key: bytes) -> V | None:
        """For queries: the key's committed value from a standby copy of its partition (None
        when this worker keeps no standby of it, or the key is unknown there)."""
        partition = self.partition_of(key)
        return self._read(self.dbs.get(partition) if partition in self.standby_current else None, key)

    def _read(self, db: Rdict | None, key: bytes) -> V | None:
        """A key's persisted value (queries: not cached)."""
        if db is None:
            return None
        if self.split is None:
            raw = db.get(key)
            return self.decode(raw) if raw is not None else None
        read = _read_split(db, key)
        return self.split.join(read[0], read[1].values()) if read is not None else None

    def has_standby(self, key: bytes) -> bool:
        """A standby copy of the key's partition that has caught up with its changelog once
        (a copy still replaying its history would answer 404 for keys it has not reached)."""
        return self.partition_of(key) in self.standby_current

    def items(self, partition: int) -> Iterator[tuple[bytes, V]]:
        """Every value of an active partition (the writer's thread, or statistics)."""
        assert self.split is None, "a split store's records are not values"
        cache = dict(self.cache.get(partition, {}))
        yield from cache.items()
        db = self.dbs.get(partition)
        if db is None:
            return
        for key, raw in db.items():
            if key == OFFSET_KEY or key in cache:
                continue
            yield key, self.decode(raw)

    def raw_items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Persisted values of a partition, undecoded (rebuilding derived indexes)."""
        assert self.split is None, "a split store's records are not values"
        for key, raw in self.open(partition).items():
            if key != OFFSET_KEY:
                yield key, raw

    def active_partitions(self) -> list[int]:
        return sorted(self.active)

    # ------------------------------------------------------------------ commit protocol

    def flush_changelog(self, produce: Callable[..., None]) -> None:
        """Produce each dirty key's latest value to its changelog partition (in the open
        transaction). `produce(topic, key, value, partition, on_delivery)`.

        Only the last record of each partition asks for its delivery report (its offset is the
        position `persist` records; a partition's records are delivered in order). A report
        runs Python on whichever thread serves it, the committer's during the commit's flush, and
        each took the GIL from the runtime thread: with one report per record, commits under
        load waited on the GIL hundreds of times (issue 12)."""
        for partition, keys in self.dirty.items():
            cache = self.cache[partition]
            pending = self._pending.setdefault(partition, {})
            records: list[tuple[bytes, bytes | None]] = []
            for key in keys:
                if self.split is not None:
                    self._flush_split(partition, key, cache[key], pending, records)
                    continue
                raw = pending[key] = self.encode(cache[key])
                records.append((key, raw))
            last = len(records) - 1
            for n, (key, raw) in enumerate(records):
                produce(self.changelog_topic, key, raw, partition, self._delivered if n == last else None)
        self.dirty.clear()

    def _flush_split(
        self, partition: int, key: bytes, value: V, pending: dict[bytes, bytes | None],
        records: list[tuple[bytes, bytes | None]],
    ) -> None:
        assert self.split is not None
        known = self._parts.setdefault(partition, {})
        entry = known.get(key)
        prefix = key + PART
        if entry is not None and entry[0] is value and self.split.changes is not None:
            delta = self.split.changes(value)
            if delta is not None:  # the value says which parts changed since `entry`
                head, changed = delta
                parts = entry[1]
                pending[key] = head
                records.append((key, head))
                for suffix, raw in changed.items():
                    if raw is None:
                        if parts.pop(suffix, None) is not None:
                            pending[prefix + suffix] = None
                            records.append((prefix + suffix, None))
                    elif parts.get(suffix) != raw:
                        parts[suffix] = pending[prefix + suffix] = raw
                        records.append((prefix + suffix, raw))
                return
        head, parts = self.split.parts(value)
        if entry is not None:
            before = entry[1]
        else:  # a new key, or one put without a get: what RocksDB holds
            read = _read_split(self.dbs[partition], key)
            before = read[1] if read is not None else {}
        known[key] = (value, parts)
        pending[key] = head
        records.append((key, head))
        for suffix, raw in parts.items():
            if before.get(suffix) != raw:
                pending[prefix + suffix] = raw
                records.append((prefix + suffix, raw))
        for suffix in before.keys() - parts.keys():
            pending[prefix + suffix] = None
            records.append((prefix + suffix, None))

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            partition = msg.partition()
            if msg.offset() > self._last_sent.get(partition, -1):
                self._last_sent[partition] = msg.offset()

    def persist(self) -> None:
        """After the transaction committed: write flushed values and the changelog position
        (the commit marker's offset, right after the last value) to RocksDB."""
        for partition, values in self._pending.items():
            db = self.dbs.get(partition)
            if db is None:
                continue
            batch = WriteBatch(raw_mode=True)
            for key, raw in values.items():
                if raw is None:
                    batch.delete(key)
                else:
                    batch.put(key, raw)
            last = self._last_sent.get(partition)
            if last is not None:
                batch.put(OFFSET_KEY, str(last + 1).encode())
            db.write(batch)
        self._pending.clear()
        self._last_sent.clear()
        self._evict()

    def _evict(self) -> None:
        """Forget the decoded values first cached, beyond `max_cached` (values changed since the
        last flush stay). Values enter the cache when first read or written, so the oldest
        entries are mostly orders that finished; an evicted one still in use is read again.

        Until the eighth session whole partitions were dropped, and only those with no change
        pending: the runtime processes the next transaction while a commit is in flight, so
        under load a partition rarely had none, the cache grew past its bound, and a partition
        that did go had all its open orders decoded again. (`python -m scripts.bench state
        --orders 40000 --hold 0` with O2C_STATE_CACHE_ENTRIES=10000: peak RSS 869 -> 779 MiB.)"""
        total = sum(map(len, self.cache.values()))
        excess = total - self.max_cached
        if excess <= 0:
            return
        for partition, cache in self.cache.items():
            dirty = self.dirty.get(partition, ())
            parts = self._parts.get(partition)
            drop = -(-excess * len(cache) // total)  # this partition's share, rounded up
            victims = []
            for key in cache:  # oldest first
                if len(victims) >= drop:
                    break
                if key not in dirty:
                    victims.append(key)
            for key in victims:
                del cache[key]
                if parts is not None:
                    parts.pop(key, None)

    def discard(self) -> None:
        """Forget every uncommitted value (the transaction was aborted)."""
        for callback in self.on_discard:
            callback()
        self.cache.clear()
        self._parts.clear()
        self.dirty.clear()
        self._pending.clear()
        self._last_sent.clear()

    def uncommitted_partitions(self) -> set[int]:
        return {p for p, keys in self.dirty.items() if keys} | set(self._pending)

    def close_all(self) -> None:
        self.standby.clear()
        self.standby_current.clear()
        for partition in list(self.dbs):
            self.close(partition)


def _read_split(db: Rdict, key: bytes) -> tuple[bytes, dict[bytes, bytes]] | None:
    """A split value's head and parts, from one snapshot (the writer may be persisting)."""
    snapshot = db.snapshot()
    first = next(iter(snapshot.items(from_key=key)), None)  # (a snapshot has no `get`)
    if first is None or first[0] != key:
        return None
    head = first[1]
    prefix = key + PART
    parts = {}
    for part_key, raw in snapshot.items(from_key=prefix):
        if not part_key.startswith(prefix):
            break
        parts[part_key[len(prefix):]] = raw
    return head, parts
