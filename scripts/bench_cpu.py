"""CPU per input event of the three agents in one process, without Kafka (issue 14).

`python -m scripts.bench_cpu [--orders N] [--check]`: the simulated input of N orders, Avro
encoded, is fed to the order, inventory and case agents in batches; what they send to each
other's topics (allocation requests and results, case facts) goes back in, like the runtime
routes it, and every few batches the stores flush their changelogs and persist (a commit).
It prints the runtime thread's CPU per input event: the cost of the processors alone, far less
noisy than the whole-pipeline benchmark on a shared machine (no broker, no other threads).

`--check` makes the wall clock a counter and prints a SHA-256 of every record sent, in order,
and of every changelog record written, in order of commit (sorted within one: a commit's
records of different keys may go out in any order): equal digests (with the same
PYTHONHASHSEED) mean the outputs and the stored bytes are the same byte for byte, e.g. before
and after an optimisation.
"""

from __future__ import annotations

import argparse
import collections
import gc
import hashlib
import itertools
import os
import shutil
import tempfile
import time
from typing import Any

BATCH = 64  # records per `process` call at most (a runtime batch of a busy backlog is similar)
COMMIT_RECORDS = 256  # input records between two commits (4 backlog batches)


class _Record:
    """What the agents read of the runtime's `Record`."""

    __slots__ = ("topic", "partition", "key", "value", "timestamp", "produced", "internal", "headers",
                 "decoded", "offset", "sender")

    def __init__(self, topic: str, partition: int, key: bytes, value: bytes, at: int, internal: bool) -> None:
        self.topic, self.partition, self.key, self.value = topic, partition, key, value
        self.timestamp = self.produced = at
        self.internal, self.headers, self.decoded, self.offset, self.sender = internal, None, None, 0, 0

    @property
    def cause_time(self) -> int:
        return self.timestamp

    def cause_header(self) -> list[tuple[str, bytes]]:
        return [("o2c-cause-time", str(self.timestamp).encode())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=BATCH,
                        help="records per process call (64: a backlog; 2-4: live traffic at 1,000/s)")
    parser.add_argument("--commit-records", type=int, default=COMMIT_RECORDS,
                        help="input records between two commits (about 36 at 1,000/s live)")
    parser.add_argument("--check", action="store_true", help="deterministic clock; print a digest of the outputs")
    args = parser.parse_args(argv)
    print(f"$ python -m scripts.bench_cpu --orders {args.orders} --seed {args.seed} --batch {args.batch} --commit-records {args.commit_records}"
          + (" --check" if args.check else ""))
    digest = hashlib.sha256()
    if args.check:
        ticks = itertools.count()
        time.time = lambda: 1_800_000_000 + next(ticks) / 1000  # type: ignore[assignment]
    data_dir = tempfile.mkdtemp(prefix="o2c-bench-cpu-")
    os.environ.update(O2C_DATA_DIR=data_dir, O2C_SLA_CLOCK="event", O2C_AUTH_ENABLED="false")
    try:
        return _run(args, digest)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _run(args: argparse.Namespace, digest: Any) -> int:
    from streams.contracts.codec import Codec
    from streams.processors.cases import CaseAgent
    from streams.processors.inventory import InventoryAgent
    from streams.processors.orders import OrderAgent
    from streams.runtime.partitioner import partition_of
    from streams.settings import Settings
    from streams.simulator.simulate import SimulationConfig, generate

    settings = Settings()
    codec = Codec(settings)
    agents = [OrderAgent(settings, codec), InventoryAgent(settings, codec), CaseAgent(settings, codec)]
    by_topic = {topic: agent for agent in agents for topic in agent.topics}
    partitions = settings.partitions
    queue: collections.deque[_Record] = collections.deque()
    sent: collections.Counter[str] = collections.Counter()

    class Out:
        def send(self, topic: str, key: bytes, value: bytes, at: Any = None, headers: Any = None) -> None:
            sent[topic] += 1
            if args.check:
                digest.update(repr((topic, key, value, headers)).encode())
            if topic in by_topic:
                queue.append(_Record(topic, partition_of(key, partitions), key, value, int(time.time() * 1000), True))

        def produce(self, topic: str, key: bytes, value: bytes | None, partition: int, *_: Any) -> None:
            if args.check:
                flushed.append(repr((topic, key, value, partition)))

    out = Out()
    flushed: list[str] = []  # changelog records of the commit under way
    for agent in agents:
        for store in agent.stores:
            for partition in range(partitions):
                store.open(partition)
        agent.assigned(set(range(partitions)))
    inputs = [
        _Record(settings.topic(sim.role), partition_of(sim.key.encode(), partitions), sim.key.encode(),
                codec.encode_flat(sim.role, sim.event), 0, False)
        for sim in generate(SimulationConfig(orders=args.orders, seed=args.seed))
    ]

    def commit() -> None:
        for agent in agents:
            agent.before_commit()
        for agent in agents:
            for store in agent.stores:
                store.flush_changelog(out.produce)
                store.persist()
            agent.committed()
        for record in sorted(flushed):
            digest.update(record.encode())
        flushed.clear()

    every = max(1, args.commit_records // args.batch)  # batches between two commits
    fifth = max(1, len(inputs) // 5)
    marks: list[tuple[int, float]] = []  # (inputs fed, CPU) at each fifth: flat with state? (issue 14)
    gc.collect()
    gc.freeze()
    started = time.thread_time()
    for n, i in enumerate(range(0, len(inputs), args.batch)):
        if i // fifth > len(marks):
            marks.append((i, time.thread_time()))
        queue.extend(inputs[i:i + args.batch])
        while queue:
            tasks: dict[tuple[int, int], list[_Record]] = {}
            for record in (queue.popleft() for _ in range(min(len(queue), args.batch))):
                agent = by_topic[record.topic]
                agent.event_time(record)
                tasks.setdefault((id(agent), record.partition), []).append(record)
            for records in tasks.values():
                by_topic[records[0].topic].process(records, out)
        if n % every == every - 1:
            commit()
    commit()
    cpu = time.thread_time() - started
    print(f"{len(inputs)} input events ({args.orders} orders): {cpu:.2f} s CPU, "
          f"{cpu / len(inputs) * 1e6:.1f} us per input event")
    spans = [(0, started), *marks, (len(inputs), started + cpu)]
    print("per fifth of the input (us per input event):", " / ".join(
        f"{(t1 - t0) / (n1 - n0) * 1e6:.0f}" for (n0, t0), (n1, t1) in zip(spans, spans[1:]) if n1 > n0))
    print("sent:", ", ".join(f"{topic} {n}" for topic, n in sorted(sent.items())))
    if args.check:
        print("digest:", digest.hexdigest())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
