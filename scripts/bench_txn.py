"""What a Kafka transaction's commit costs by the number of partitions it writes (issue 12).

`python -m scripts.bench_txn [--partitions 12 --partitions 48] [--transactions 200]`, against
the broker of `O2C_BOOTSTRAP_SERVERS`: a bare confluent-kafka transactional producer configured
as the worker's writes 2 small records to each partition, sends offsets and commits, 40 times a
second; it prints the median and p90 of each step. librdkafka sends one produce request per
partition and the broker serves a connection's requests one at a time, so the flush grows with
the partitions (docs/runtime.md, "The anatomy of a commit cycle"). A plain idempotent producer
over the same partitions is the baseline: the difference is the partitions' registration with
the transaction.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.settings import Settings

PER_TOPIC = 4


def _quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p90 {ordered[int(len(ordered) * 0.9)] * 1000:.1f} ms"


def measure(bootstrap: str, partitions: int, transactions: int, transactional: bool) -> dict[str, list[float]]:
    run = uuid.uuid4().hex[:8]
    topics = [f"o2c-bench-txn-{run}-{n}" for n in range(max(1, partitions // PER_TOPIC))]
    source = f"o2c-bench-txn-{run}-in"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, PER_TOPIC, 1) for t in [*topics, source]]).values():
        future.result()
    config = {
        "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 25,
        "compression.type": "lz4", "retry.backoff.ms": 5, "retry.backoff.max.ms": 500,
    }
    if transactional:
        config |= {"transactional.id": f"o2c-bench-txn-{run}", "transaction.timeout.ms": 10_000}
    producer = Producer(config)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"o2c-bench-txn-{run}"})
    steps: dict[str, list[float]] = {"flush": [], "offsets": [], "commit": []}
    try:
        if transactional:
            consumer.subscribe([source])
            consumer.poll(1)
            producer.init_transactions(30)
        metadata = consumer.consumer_group_metadata()
        for n in range(transactions):
            if transactional:
                producer.begin_transaction()
            for topic in topics:
                for partition in range(PER_TOPIC):
                    for _ in range(2):
                        producer.produce(topic, b"x" * 200, b"key", partition=partition)
            started = time.perf_counter()
            producer.flush(30)
            flushed = time.perf_counter()
            steps["flush"].append(flushed - started)
            if transactional:
                offsets = [TopicPartition(source, p, n) for p in range(PER_TOPIC)]
                producer.send_offsets_to_transaction(offsets, metadata, 30)
                sent = time.perf_counter()
                producer.commit_transaction(30)
                steps["offsets"].append(sent - flushed)
                steps["commit"].append(time.perf_counter() - sent)
            time.sleep(0.025)
    finally:
        consumer.close()
        admin.delete_topics([*topics, source])
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, action="append", help="partitions written (multiple of 4)")
    parser.add_argument("--transactions", type=int, default=200)
    args = parser.parse_args()
    sizes = args.partitions or [12, 28, 48]
    bootstrap = Settings().bootstrap_servers
    print(f"$ python -m scripts.bench_txn {' '.join(f'--partitions {p}' for p in sizes)} "
          f"--transactions {args.transactions}  (broker {bootstrap})")
    for partitions in sizes:
        idempotent = measure(bootstrap, partitions, args.transactions, transactional=False)
        steps = measure(bootstrap, partitions, args.transactions, transactional=True)
        print(f"  {partitions} partitions: transactional flush {_quantiles(steps['flush'])}, "
              f"send_offsets {_quantiles(steps['offsets'])}, commit {_quantiles(steps['commit'])}; "
              f"idempotent flush (baseline) {_quantiles(idempotent['flush'])}")


if __name__ == "__main__":
    main()
