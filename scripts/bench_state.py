"""State size, restart and restore (issue 14 point 4): does a worker stay fast and small as the
orders it holds grow, and how long does it take to come back?

1. **Grow.** One worker processes the whole-pipeline backlog of `--orders` simulated orders. The
   rate is reported per fifth of the input (flat, or falling as state accumulates?), with the
   worker's resident memory sampled along the way, and the changelog it left (records, bytes on
   the broker's disk).
2. **Hold.** The orders changelog is filled up to `--hold` orders with copies of the states the
   worker wrote (new order ids, same shape), as if the worker had processed that much.
3. **Catch up on the changelog.** A worker started on the grow phase's local state restores the
   tail (the copies) and opens its SLA indexes: records/s.
4. **Clean restart.** SIGTERM, start again on the same files: seconds from start to `/ready`
   (goal <= 10 s with 1M orders held).
5. **Full restore.** Local state deleted, start: seconds to `/ready` and changelog records/s
   (goal >= 50k records/s), and the memory of a fresh process holding every order.

Steps 4 and 5 run `--runs` times (alternating), with their medians at the end.

    python -m scripts.bench state --orders 20000 --hold 1000000 --runs 3
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from scripts.bench_console import console_times
from scripts.bench_harness import (
    BENCH_DIR,
    REPO,
    Run,
    delete_topics_of,
    ends_with_parent,
    isolated_settings,
    measure_worker,
    preproduce_all,
    quiet,
    stop,
    worker_env,
)
from streams.contracts.roles import INPUT_ROLES
from streams.runtime.partitioner import partition_of
from streams.runtime.topics import client_config, producer_config
from tables.order_state import OrderState

WORKER = [sys.executable, "-m", "streams.cli", "worker"]


def rss_mb(pid: int) -> float:
    """Resident memory now (VmRSS), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


class RssSampler:
    """Samples a process's resident memory twice a second until it exits or `stop()`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.5):
            mb = rss_mb(self.pid)
            if mb:
                self.samples.append((time.monotonic(), mb))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def fifths(run: Run) -> list[float]:
    """Input events/s in each fifth of the input: the times the committed offsets crossed each
    fifth, interpolated between samples (commits are coarser than fifths of a small input)."""
    total = run.samples[-1][1]
    crossings = []
    for i in range(6):
        target = total * i / 5
        for (t0, c0), (t1, c1) in zip(run.samples, run.samples[1:]):
            if c0 <= target <= c1:
                crossings.append(t0 if c1 == c0 else t0 + (t1 - t0) * (target - c0) / (c1 - c0))
                break
        else:
            crossings.append(run.samples[0][0] if target <= run.samples[0][1] else run.samples[-1][0])
    step = total / 5
    return [step / (b - a) if b > a else float("nan") for a, b in zip(crossings, crossings[1:])]


QUERIES = (
    "/cases?limit=50",
    "/cases?state=OPEN&severity=HIGH&limit=50",
    "/sla/at-risk?limit=100",
    "/sla/at-risk?level=CRITICAL&limit=100",
    "/kpis",
    "/stats",
    "/metrics",
    "/cases?order_id={order}",
    "/orders/{order}/timeline",
    "/orders/{order}",
)


def query_times(port: str, orders: int, repeats: int = 40) -> list[str]:
    """Median and worst time of each query (operations endpoints, issue 16), with the size of
    the last answer."""
    lines = []
    order = f"SO-7-{orders // 2:06d}"  # the simulator's order ids (seed 7)
    for path in QUERIES:
        url = f"http://127.0.0.1:{port}{path.format(order=order)}"
        took = []
        size = 0
        status = 0
        for _ in range(repeats):
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=30) as answer:
                    size, status = len(answer.read()), answer.status
            except urllib.error.HTTPError as exc:
                size, status = len(exc.read()), exc.code
            took.append(time.perf_counter() - started)
        took.sort()
        lines.append(
            f"GET {path}: median {took[len(took) // 2] * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms"
            f" ({status}, {size:,} bytes)"
        )
    return lines


def cases_listing_after(port: str, timeout: float = 120) -> str:
    """How long after ready `GET /cases` answers (a restarted worker reads its stored cases into
    the listing's index first: 503 until then), and the first answer's time."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        asked = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cases?limit=50", timeout=30) as answer:
                answer.read()
                took = time.perf_counter() - asked
                return f"GET /cases answered {time.monotonic() - started:.1f} s after ready (in {took * 1000:.0f} ms)"
        except urllib.error.HTTPError as exc:
            exc.read()
            if exc.code != 503:
                return f"GET /cases answered {exc.code}"
        time.sleep(0.2)
    return f"GET /cases not answered within {timeout:.0f} s of ready"


def changelog_records(settings, topic: str) -> Iterator[tuple[int, bytes, bytes | None]]:
    """Every committed record of a changelog topic: (partition, key, value)."""
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": "o2c-bench-state",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            },
        )
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        pending = set(partitions)
        while pending:
            for msg in consumer.consume(10_000, 1.0):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise RuntimeError(msg.error())
                yield msg.partition(), msg.key(), msg.value()
    finally:
        consumer.close()


def topic_bytes(broker_dir: Path | None, topic: str) -> int | None:
    """Bytes of a topic's log segments on the broker's disk (None when the log dir is unknown)."""
    if broker_dir is None or not broker_dir.is_dir():
        return None
    return sum(  # allocated blocks: index files are preallocated sparse files of 10 MiB
        f.stat().st_blocks * 512 for d in broker_dir.glob(f"{topic}-*") for f in d.iterdir() if f.is_file()
    )


def fill_changelog(settings, topic: str, partitions: int, templates: list[bytes], orders: int) -> int:
    """Produce copies of `templates` (OrderState bytes) under new order ids until the changelog
    holds `orders` distinct orders; returns the records produced."""
    producer = Producer(producer_config(settings))
    produced = 0
    copy = 0
    needed = orders - len(templates)
    while produced < needed:
        copy += 1
        for raw in templates:
            if produced >= needed:
                break
            state = OrderState.from_bytes(raw)
            state.order_id = f"{state.order_id}-c{copy}"
            key = state.order_id.encode()
            while True:
                try:
                    producer.produce(topic, state.to_bytes(), key, partition=partition_of(key, partitions))
                    break
                except BufferError:
                    producer.poll(0.1)
            produced += 1
            if produced % 10_000 == 0:
                producer.poll(0)
    producer.flush(120)
    return produced


def start_until_ready(label: str, env: dict[str, str], workdir: Path, timeout: float = 1800) -> tuple[
    subprocess.Popen, float, Path
]:
    """Start a worker and return it with the seconds from start to its first 200 on `/ready`."""
    log_path = workdir / f"{label}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process by `finish`
    started = time.monotonic()
    proc = subprocess.Popen(WORKER, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=ends_with_parent)
    url = f"http://127.0.0.1:{env['O2C_WEB_PORT']}/ready"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{label} exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return proc, time.monotonic() - started, log_path
        except OSError:
            pass
        if time.monotonic() - started > timeout:
            stop(proc)
            raise RuntimeError(f"{label} not ready after {timeout:.0f} s; see {log_path}")
        time.sleep(0.05)


_RESTORED = re.compile(r"restored (\d+) records of (\S+) in ([\d.]+) s")
_INDEXED = re.compile(
    r"SLA due index(?:es)? of partitions? [\d, \[\]]+ (rebuilt(?: by \d+ helper processes)?|caught up on the replayed"
    r" tail): (\d+) orders in ([\d.]+) s"
)


def log_figures(log_path: Path) -> tuple[int, float, str]:
    """(changelog records restored, seconds restoring, what the SLA index did)."""
    text = log_path.read_text(errors="replace")
    restored = [(int(n), float(s)) for n, _topic, s in _RESTORED.findall(text)]
    indexed: dict[str, tuple[int, float]] = {}
    for how, n, s in _INDEXED.findall(text):
        orders, seconds = indexed.get(how, (0, 0.0))
        indexed[how] = (orders + int(n), seconds + float(s))
    index = "; ".join(f"SLA index {how} ({n:,} orders) in {s:.1f} s" for how, (n, s) in indexed.items())
    return sum(n for n, _ in restored), sum(s for _, s in restored), index or "SLA index current"


def bench_state(orders: int, hold: int, broker_dir: Path | None, runs: int = 1) -> None:
    settings = isolated_settings()
    workdir = BENCH_DIR / settings.topic_prefix.rstrip(".")
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    env = worker_env(settings, settings.app_id, data, "exactly_once")
    port = env["O2C_WEB_PORT"]
    changelog = settings.internal_topic("orders-changelog")
    print(f"$ python -m scripts.bench state --orders {orders} --hold {hold} --runs {runs}")
    try:
        counts = preproduce_all(settings, orders)
        total = sum(counts.values())
        samplers: list[RssSampler] = []
        after_rss: list[float] = []

        timings: list[str] = []
        quiet_s: list[float] = []  # first commit -> the allocation loop quiet (before the queries)

        def settle(proc: subprocess.Popen, run: Run) -> None:
            quiet(port)
            quiet_s.append(time.monotonic() - run.samples[0][0])
            after_rss.append(rss_mb(proc.pid))
            timings.extend(query_times(port, orders))
            timings.extend(console_times(port, f"SO-7-{orders // 2:06d}", "SKU-0001"))

        grow = measure_worker(
            settings, "grow", WORKER, env, workdir, roles=INPUT_ROLES, after=settle,
            started_hook=lambda proc: samplers.append(RssSampler(proc.pid)),
        )
        samplers[0].stop()
        rss = [mb for _, mb in samplers[0].samples]
        quarter = max(1, len(rss) // 4)
        print(
            f"  grow: {total:,} input events of {orders:,} orders, one worker, exactly-once:"
            f" {total / quiet_s[0]:,.0f} input events/s until the allocation loop was quiet"
            f" ({grow.rate:,.0f} until committed); by fifth of the input:"
            f" {' / '.join(f'{r:,.0f}' for r in fifths(grow))} events/s"
        )
        print(f"  HTTP answers and console pages with {orders:,} orders held (sequential, after the backlog):")
        for line in timings:
            print(f"    {line}")
        print(
            f"  worker RSS: {rss[quarter - 1] if rss else 0:,.0f} MiB at a quarter of the run,"
            f" {after_rss[0] if after_rss else 0:,.0f} MiB at the end, peak {max(rss, default=0):,.0f} MiB"
        )
        latest: dict[bytes, bytes] = {}
        records = 0
        for _partition, key, value in changelog_records(settings, changelog):
            records += 1
            if value is None:
                latest.pop(key, None)
            else:
                latest[key] = value
        size = topic_bytes(broker_dir, changelog)
        mean = sum(map(len, latest.values())) / max(1, len(latest))
        print(
            f"  orders changelog after the grow phase: {records:,} records for {len(latest):,} orders,"
            f" latest state {mean:,.0f} bytes on average"
            + (f", {size / 2**20:,.1f} MiB on the broker's disk" if size is not None else "")
        )
        if hold > len(latest):
            started = time.monotonic()
            produced = fill_changelog(settings, changelog, settings.partitions, list(latest.values()), hold)
            print(f"  hold: {produced:,} copies produced to the changelog in {time.monotonic() - started:.0f} s"
                  f" ({hold:,} orders held)")
        del latest
        phases = [("catch-up", False)] + [("clean-restart", False), ("full-restore", True)] * runs
        ready: dict[str, list[float]] = {}
        rates: dict[str, list[float]] = {}
        for n, (label, wipe) in enumerate(phases):
            if wipe:
                shutil.rmtree(data, ignore_errors=True)
            proc, ready_s, log_path = start_until_ready(f"{label}-{n}", env, workdir)
            resident = rss_mb(proc.pid)
            listing = cases_listing_after(port)
            stop(proc)
            restored, restore_s, index = log_figures(log_path)
            rate = f" = {restored / restore_s:,.0f} records/s" if restore_s else ""
            ready.setdefault(label, []).append(ready_s)
            if restore_s:
                rates.setdefault(label, []).append(restored / restore_s)
            print(
                f"  {label}: ready {ready_s:.1f} s after start; {restored:,} changelog records restored in"
                f" {restore_s:.1f} s{rate}; {index}; RSS when ready {resident:,.0f} MiB; {listing}"
            )
        if runs > 1:
            for label in ("clean-restart", "full-restore"):
                print(
                    f"  {label}, median of {runs}: ready {statistics.median(ready[label]):.1f} s after start"
                    + (f", {statistics.median(rates[label]):,.0f} changelog records/s" if label in rates else "")
                )
        size = topic_bytes(broker_dir, changelog)
        if size is not None:
            print(f"  orders changelog at the end: {size / 2**20:,.1f} MiB on the broker's disk")
        print(f"  worker logs: {workdir}")
    finally:
        shutil.rmtree(data, ignore_errors=True)
        delete_topics_of(settings)
