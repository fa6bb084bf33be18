"""RocksDB options with one memory budget per worker process.

Each RocksDB instance (a table partition, an SLA index partition) by default keeps up to two 64 MiB
memtables and its own block cache, so a worker's memory grew with what it had written since it
started (about 90 MiB per partition after a restore), not with anything a setting bounds. As Kafka
Streams' bounded-memory `RocksDBConfigSetter` does, every instance of the process shares one block
cache and one write buffer manager whose memtables are charged to that cache: `O2C_ROCKSDB_MEMORY_MB`
bounds them together.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBufferManager, WriteOptions

log = logging.getLogger("o2c.state")

_MIB = 1 << 20


@cache
def _shared(memory_mb: int) -> tuple[Cache, WriteBufferManager]:
    block_cache = Cache(memory_mb * _MIB)
    # Memtables may take half of the budget; charged to the cache, so both together stay in it.
    buffers = WriteBufferManager.new_write_buffer_manager_with_cache(memory_mb * _MIB // 2, False, block_cache)
    return block_cache, buffers


def rocks_options(memory_mb: int | None) -> Options:
    """Options of a raw-mode instance drawing on the process's shared budget (None: RocksDB's
    defaults, unbounded: tools and tests that open a single instance)."""
    options = Options(raw_mode=True)
    if memory_mb is None:
        return options
    block_cache, buffers = _shared(memory_mb)
    options.set_write_buffer_manager(buffers)
    # A memtable flushes at a quarter of the budget (at most RocksDB's default 64 MiB), or
    # earlier when the instances together reach half of it. Small memtables flushed often pile
    # up level-0 files, and RocksDB then slows or stops writes: a write on the runtime thread
    # that waits holds the open transaction past its timeout (a worker was fenced so at 100k
    # orders with 8 MiB memtables). Level 0 may also grow further before writes slow down.
    options.set_write_buffer_size(min(64 * _MIB, max(_MIB, memory_mb * _MIB // 4)))
    options.set_level_zero_slowdown_writes_trigger(40)
    options.set_level_zero_stop_writes_trigger(64)
    table = BlockBasedOptions()
    table.set_block_cache(block_cache)
    options.set_block_based_table_factory(table)
    return options


def release_free_memory() -> None:
    """Give memory freed by a bulk load (a restore, an index rebuild) back to the system.

    glibc keeps freed heap pages for reuse: after replaying a changelog a worker held ~130 MiB of
    free pages per 300k records restored (measured with `malloc_trim`). No-op without glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):
        log.debug("malloc_trim unavailable")


def open_index_db(path: Path, options: Options | None = None) -> Rdict:
    """A raw-mode RocksDB for a derived index, without a write-ahead log: after a crash RocksDB
    comes back to its last flushed memtable, a prefix of the writes. An index whose every write
    deletes its covered-offset mark can trust a prefix that still holds the mark (no write after
    it); any other is rebuilt on assignment. Saves a fifth of the cost of a write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = Rdict(str(path), options if options is not None else Options(raw_mode=True))
    no_wal = WriteOptions()
    no_wal.disable_wal = True
    db.set_write_options(no_wal)
    return db


class _Closable(Protocol):
    def close(self) -> None: ...


Index = TypeVar("Index", bound=_Closable)


class PartitionIndexes(Generic[Index]):
    """One local index (derived data in its own RocksDB: the SLA due index, the case index) per
    actively owned partition, under `root/p<partition>`. Opened when the partition is assigned
    (rebuilt unless its covered offset proves it current), closed when it is revoked: readers
    then only ever see partitions this worker actively owns."""

    def __init__(self, root: Path, make: Callable[[Path], Index]) -> None:
        self.root = Path(root)
        self.make = make
        self.by_partition: dict[int, Index] = {}

    def open(self, partition: int) -> Index:
        """The partition's index as left on disk (check its covered offset before trusting it)."""
        index = self.by_partition.get(partition)
        if index is None:
            index = self.by_partition[partition] = self.make(self.root / f"p{partition}")
        return index

    def reset(self, partition: int) -> Index:
        """The partition's index, emptied (files deleted): the start of a rebuild."""
        self.close(partition)
        shutil.rmtree(self.root / f"p{partition}", ignore_errors=True)
        return self.open(partition)

    def close(self, partition: int) -> None:
        index = self.by_partition.pop(partition, None)
        if index is not None:
            index.close()

    def close_all(self) -> None:
        for partition in list(self.by_partition):
            self.close(partition)

    def get(self, partition: int) -> Index | None:
        return self.by_partition.get(partition)
