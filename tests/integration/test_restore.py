"""Restoring a store from its changelog on the real broker, in the worker and in helper processes
(streams/runtime/restore.py): both leave the same RocksDB contents, positions and replay notes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.runtime import restore as restoring
from streams.runtime.store import PartitionedStore

PARTITIONS = 3


def _changelog(servers: str) -> tuple[str, dict[int, dict[bytes, bytes]]]:
    """A changelog topic with two long partitions (overwrites, tombstones) and a short one; and
    what each partition holds once compacted."""
    topic = f"t{uuid.uuid4().hex[:10]}.restore-changelog"
    admin = AdminClient({"bootstrap.servers": servers})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 5})
    expected: dict[int, dict[bytes, bytes]] = {p: {} for p in range(PARTITIONS)}
    sizes = {0: 400, 1: 260, 2: 7}
    for partition, n in sizes.items():
        for i in range(n):
            key = f"k{partition}-{i % 150}".encode()
            if i % 37 == 36:
                producer.produce(topic, key=key, value=None, partition=partition)
                expected[partition].pop(key, None)
            else:
                value = f"v{i}".encode() * (1 + i % 5)
                producer.produce(topic, key=key, value=value, partition=partition)
                expected[partition][key] = value
    producer.flush(30)
    return topic, expected


def _store(topic: str, directory: Path) -> PartitionedStore[bytes]:
    store: PartitionedStore[bytes] = PartitionedStore(
        "restore", topic, directory, decode=bytes, encode=bytes, partition_of=lambda key: 0, memory_mb=16
    )
    store.track_replays = True
    return store


def test_helper_processes_restore_what_the_worker_restores_alone(
    bootstrap_servers: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, expected = _changelog(bootstrap_servers)
    monkeypatch.setattr(restoring, "HELPER_TAIL", 100)  # partitions 0 and 1 go to helpers, 2 stays
    started: list[list[int]] = []
    start = restoring._Helper.start

    def counted(store, partitions, targets, config, helpers):  # type: ignore[no-untyped-def]
        started.append(sorted(partitions))
        return start(store, partitions, targets, config, helpers)

    monkeypatch.setattr(restoring._Helper, "start", counted)
    config = {"bootstrap.servers": bootstrap_servers}
    results = {}
    for helpers in (2, 0):
        store = _store(topic, tmp_path / f"helpers-{helpers}")
        store.restore_batch(1, [(b"k1-0", b"stale")], 50)  # a persisted position: the tail starts there
        store.take_replayed(1)
        total = restoring.restore(store, list(range(PARTITIONS)), config, settle_timeout=30, helpers=helpers)
        contents = {p: dict(store.raw_items(p)) for p in range(PARTITIONS)}
        positions = {p: store.position(p) for p in range(PARTITIONS)}
        replayed = {p: store.take_replayed(p) for p in range(PARTITIONS)}
        store.close_all()
        results[helpers] = (total, contents, positions, replayed)

    assert started == [[0], [1]]  # the two long tails, one helper each; only in the first run
    assert results[2] == results[0]
    total, contents, positions, replayed = results[2]
    assert total == 400 + (260 - 50) + 7
    assert contents == expected  # every key of partition 1 was last written after offset 50
    assert positions == {0: 400, 1: 260, 2: 7}
    assert replayed[1] is not None and replayed[1][0] == 50  # the position before the replay
    assert replayed[0] == (None, {f"k0-{i}".encode() for i in range(150)})
