"""Benchmarks behind `make bench`. Each prints its figures with the command that made them and a
ratio against a baseline measured in the same run, on the same broker (the machine is shared and
noisy, so absolute numbers wander; ratios much less).

    python -m scripts.bench produce  [--events N]   o2c produce vs raw confluent-kafka produce
    python -m scripts.bench simulate [--orders N]   o2c simulate vs raw produce of the same count
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path

from confluent_kafka import Producer

from streams.codec import Codec
from streams.flat import key_of, to_record
from streams.settings import load_settings
from streams.simulate import SimulationConfig, generate
from streams.topics import client_config, create_topics

REPO = Path(__file__).resolve().parent.parent


def isolated_settings():
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = load_settings(topic_prefix=prefix, app_id=f"o2c-bench-{prefix[:-1]}")
    create_topics(settings)
    return settings


def o2c(settings, *args: str, stdin=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "O2C_TOPIC_PREFIX": settings.topic_prefix, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        cwd=REPO,
        stdin=stdin,
        capture_output=True,
        text=True,
        check=True,
    )


def raw_produce(settings, records: list[tuple[str, bytes, bytes]]) -> float:
    """Baseline: pre-encoded bytes through a bare idempotent producer; returns events/s."""
    producer = Producer(
        client_config(
            settings,
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "partitioner": "murmur2_random",
            },
        )
    )
    started = time.perf_counter()
    for topic, key, value in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    return len(records) / (time.perf_counter() - started)


def rate_of(stdout: str) -> float:
    """The `(12,345/s)` figure the CLI prints on its last line."""
    last = stdout.strip().splitlines()[-1]
    return float(last.rsplit("(", 1)[1].split("/s")[0].replace(",", ""))


def bench_produce(events: int) -> None:
    settings = isolated_settings()
    codec = Codec(settings)
    flat = [
        sim.event
        for sim in islice(
            (s for s in generate(SimulationConfig(orders=events, seed=11)) if s.role == "orders"), events
        )
    ]
    topic = settings.topic("orders")
    encoded = [
        (topic, key_of("orders", e).encode(), codec.encode("orders", to_record("orders", e))) for e in flat
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
        for event in flat:
            fh.write(json.dumps(event) + "\n")
        path = fh.name
    baseline = raw_produce(settings, encoded)
    started = time.perf_counter()
    done = o2c(settings, "produce", "orders", path)
    wall = len(flat) / (time.perf_counter() - started)
    produced = rate_of(done.stdout)
    os.unlink(path)
    print(f"$ python -m scripts.bench produce --events {events}")
    print(
        f"  o2c produce (validate {len(flat):,} JSON lines, encode, produce): {produced:,.0f} events/s produce phase, {wall:,.0f} events/s whole command incl. parse/validate"
    )
    print(f"  baseline raw confluent-kafka produce of the same pre-encoded bytes: {baseline:,.0f} events/s")
    print(f"  ratio whole command / baseline: {wall / baseline:.2f}")


def bench_simulate(orders: int) -> None:
    settings = isolated_settings()
    done = o2c(settings, "simulate", "--orders", str(orders), "--seed", "5")
    simulated = rate_of(done.stdout)
    total = int(done.stdout.strip().splitlines()[-1].split()[1])
    codec = Codec(settings)
    encoded = [
        (
            settings.topic(s.role),
            key_of(s.role, s.event).encode(),
            codec.encode(s.role, to_record(s.role, s.event)),
        )
        for s in generate(SimulationConfig(orders=orders, seed=5))
    ]
    baseline = raw_produce(settings, encoded)
    print(f"$ python -m scripts.bench simulate --orders {orders}")
    print(
        f"  o2c simulate ({total:,} events, generate + validate + encode + produce): {simulated:,.0f} events/s"
    )
    print(f"  baseline raw confluent-kafka produce of pre-encoded events: {baseline:,.0f} events/s")
    print(f"  ratio simulate / baseline: {simulated / baseline:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench")
    sub = parser.add_subparsers(dest="bench", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--events", type=int, default=100_000)
    p = sub.add_parser("simulate")
    p.add_argument("--orders", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.bench == "produce":
        bench_produce(args.events)
    elif args.bench == "simulate":
        bench_simulate(args.orders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
