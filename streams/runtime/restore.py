"""Restoring a table's partitions from their changelog into RocksDB (the runtime's "restore
before processing"), in helper processes when the tail is long.

A restore is a read (librdkafka) and a write (RocksDB) per record, and rocksdict holds the
interpreter lock while it writes: in one process the two never overlap, about 36k records/s
however RocksDB is tuned (docs/runtime.md, "State size, memory and coming back"). A partition
whose tail is long is therefore replayed by a helper process of its own
(`python -m streams.runtime.restore`, one per core at most), which opens that partition's
RocksDB, reads its changelog with a consumer of its own and exits; the worker meanwhile replays
the short tails itself, then reopens the partitions. Kafka Streams restores on its stream
threads, one per core, for the same reason.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams.metrics import METRICS
from streams.runtime.rocks import rocks_options
from streams.runtime.store import PartitionedStore

log = logging.getLogger("o2c.runtime")

HELPER_TAIL = 50_000
"""Changelog records from which a partition is replayed by a helper process (below, starting
one costs more than it saves)."""


def restore(
    store: PartitionedStore[Any],
    partitions: Sequence[int],
    config: Mapping[str, Any],
    settle_timeout: float = 60.0,
    helpers: int = 0,
) -> int:
    """Replay each partition's committed changelog tail into RocksDB; the number of records.
    `helpers`: helper processes at most, for the partitions with a long tail."""
    started = time.monotonic()
    base = {**config, "group.id": "o2c-restore", "enable.auto.commit": False}  # never joins nor commits
    consumer = Consumer(
        {**base, "isolation.level": "read_committed", "enable.partition.eof": True, "fetch.wait.max.ms": 10}
    )
    uncommitted = Consumer({**base, "isolation.level": "read_uncommitted"})
    total = 0
    targets: dict[int, tuple[int, int]] = {}
    running: list[_Helper] = []
    try:
        ends = _settled_ends(consumer, uncommitted, store.changelog_topic, partitions, settle_timeout)
        positions: dict[int, int | None] = {}
        for partition in partitions:
            store.open(partition)
            position = store.position(partition)
            low, high = ends[partition]
            if position is not None and position > high:
                log.warning("%s[%d]: local state ahead of its changelog (%d > %d): restoring from scratch",
                            store.changelog_topic, partition, position, high)
                store.wipe(partition)
                store.open(partition)
                position = None
            positions[partition] = position
            start = max(position if position is not None else low, low)
            targets[partition] = (start, high)
        log.info(
            "recovery targets (active): %s",
            " ".join(f"{store.changelog_topic}[{p}]={a}..{b}" for p, (a, b) in sorted(targets.items())),
        )
        delegated = spread({p: b - a for p, (a, b) in targets.items()}, helpers, HELPER_TAIL)
        running.extend(_Helper.start(store, group, targets, dict(base), len(delegated)) for group in delegated)
        starts = [
            TopicPartition(store.changelog_topic, p, a)
            for p, (a, b) in sorted(targets.items())
            if a < b and not any(p in group for group in delegated)
        ]
        if starts:
            total = _replay(consumer, store, starts)
        for helper in running:
            total += helper.finish(store, positions)
        return total
    finally:
        for helper in running:
            helper.stop()  # a failure here: none outlives the restore
        consumer.close()
        uncommitted.close()
        METRICS.child(METRICS.table_recovery, store.name).set(time.monotonic() - started)
        if total:
            log.info("restored %d records of %s in %.2f s", total, store.changelog_topic, time.monotonic() - started)


def spread(sizes: Mapping[int, int], processes: int, at_least: int) -> list[list[int]]:
    """The partitions worth a helper process (`sizes` at least `at_least`), in at most
    `processes` groups of about equal total size, largest first: one group per helper."""
    big = sorted((p for p, n in sizes.items() if n >= at_least), key=lambda p: -sizes[p])
    groups: list[list[int]] = [[] for _ in range(min(processes, len(big)))]
    loads = [0] * len(groups)
    for partition in big if groups else ():
        least = loads.index(min(loads))
        groups[least].append(partition)
        loads[least] += sizes[partition]
    return groups


class _Helper:
    """A helper process replaying some partitions of one store (see the module's docstring)."""

    def __init__(self, proc: subprocess.Popen[bytes], partitions: list[int]) -> None:
        self.proc = proc
        self.partitions = partitions

    @classmethod
    def start(
        cls, store: PartitionedStore[Any], partitions: list[int], targets: Mapping[int, tuple[int, int]],
        config: dict[str, Any], helpers: int,
    ) -> _Helper:
        """Start replaying `partitions` (their DBs closed here); `helpers` share the store's memory budget."""
        with store.mutex:  # the helper opens these DBs: RocksDB allows one process at a time
            for partition in partitions:
                store.standby_current.discard(partition)  # no standby reads from it meanwhile
                db = store.dbs.pop(partition, None)
                if db is not None:
                    db.close()
        job = {
            "topic": store.changelog_topic,
            "directory": str(store.directory),
            "memory_mb": None if store.memory_mb is None else max(16, store.memory_mb // helpers),
            "config": {k: v for k, v in config.items() if isinstance(v, str | int | float | bool)},  # not the logger
            "starts": {str(p): targets[p][0] for p in partitions},
            "track": store.track_replays,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.runtime.restore"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job).encode())
        proc.stdin.close()
        return cls(proc, partitions)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def finish(self, store: PartitionedStore[Any], positions: Mapping[int, int | None]) -> int:
        """Wait for the helper, reopen its partitions and note what it replayed; its record count."""
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        code = self.proc.wait()
        for partition in self.partitions:
            store.open(partition)
        if code != 0:
            raise RuntimeError(f"restoring {store.changelog_topic} {self.partitions} in a helper failed (exit {code})")
        result = json.loads(out)
        for partition, keys in result["replayed"].items():
            listed = None if keys is None else [bytes.fromhex(k) for k in keys]
            store.note_replayed(int(partition), listed, start=positions[int(partition)])
        return int(result["total"])


def _helper_main() -> None:
    """`python -m streams.runtime.restore`: the job (JSON) on stdin, the result on stdout."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    job = json.loads(sys.stdin.buffer.read())
    memory_mb = job["memory_mb"]
    store: PartitionedStore[Any] = PartitionedStore(
        "restore", job["topic"], job["directory"], decode=bytes, encode=bytes, partition_of=lambda key: 0,
        options=lambda: rocks_options(memory_mb), memory_mb=memory_mb,
    )
    store.track_replays = job["track"]
    starts = [TopicPartition(job["topic"], int(p), offset) for p, offset in job["starts"].items()]
    consumer = Consumer({
        **job["config"], "logger": logging.getLogger("librdkafka"), "isolation.level": "read_committed",
        "enable.partition.eof": True, "fetch.wait.max.ms": 10,
    })
    try:
        total = _replay(consumer, store, starts)
    finally:
        consumer.close()
    replayed: dict[str, list[str] | None] = {}
    for tp in starts:
        noted = store.take_replayed(tp.partition)
        if noted is not None:
            keys = noted[1]
            replayed[str(tp.partition)] = None if keys is None else [k.hex() for k in keys]
    store.close_all()
    sys.stdout.write(json.dumps({"total": total, "replayed": replayed}))


def _settled_ends(
    committed: Consumer, uncommitted: Consumer, topic: str, partitions: Sequence[int], timeout: float
) -> dict[int, tuple[int, int]]:
    """`(low, end)` of each changelog partition once no transaction is open on it.

    A transaction's `commit_transaction` returns before the coordinator has written its commit
    markers to every partition: for a few milliseconds (longer under load) the partition's last
    stable offset, where a read_committed restore stops, is still below the records it just
    committed, although the input offsets committed with them already read as stable. A worker
    that restored then (its own state after a revocation commit, or the state a departing owner
    had just committed) lost those records: orders whose inputs were committed answered 404.
    Nobody else writes to a partition we were just assigned, so an open transaction there is the
    previous owner's, finishing (markers pending) or dead (aborted by the transaction timeout):
    wait until the end a read_committed reader sees (last stable offset) is the log end."""
    deadline = time.monotonic() + timeout
    ends: dict[int, tuple[int, int]] = {}
    pending = sorted(partitions)
    while True:
        for partition in pending:
            tp = TopicPartition(topic, partition)
            low, stable = committed.get_watermark_offsets(tp, 30)
            _, end = uncommitted.get_watermark_offsets(tp, 30)
            if stable >= end:
                ends[partition] = (low, stable)
        pending = [p for p in pending if p not in ends]
        if not pending:
            return ends
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic} {pending}: a transaction stayed open for {timeout:.0f} s")
        time.sleep(0.01)


def _replay(consumer: Consumer, store: PartitionedStore[Any], starts: list[TopicPartition]) -> int:
    """Read each partition from its start to its end (read_committed) into RocksDB."""
    consumer.assign(starts)
    begin = {tp.partition: tp.offset for tp in starts}
    pending = set(begin)
    batches: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in pending}
    covered = dict(begin)  # partition -> offset after the last record read
    total = 0
    deadline = time.monotonic() + 600
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"restoring {store.changelog_topic} {sorted(pending)} took too long")
        for msg in consumer.consume(10_000, 0.5):
            partition = msg.partition()
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if partition in pending:
                        pending.discard(partition)
                        store.restore_batch(partition, batches.pop(partition, []), msg.offset())
                        log.info(
                            "recovery (active): %s[%d] from %d to %d", store.changelog_topic, partition,
                            begin[partition], covered[partition],
                        )
                    continue
                raise KafkaException(msg.error())
            batch = batches.get(partition)
            if batch is None:
                continue
            batch.append((msg.key(), msg.value()))
            covered[partition] = msg.offset() + 1
            total += 1
            if len(batch) >= 10_000:
                store.restore_batch(partition, batch, msg.offset() + 1)
                batches[partition] = []
    return total


if __name__ == "__main__":
    _helper_main()
