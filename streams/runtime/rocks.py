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
from functools import cache

from rocksdict import BlockBasedOptions, Cache, Options, WriteBufferManager

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
