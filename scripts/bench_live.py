"""`python -m scripts.bench live`: end-to-end latency of one worker under paced live traffic.

One `o2c worker` with default settings (exactly-once, commit interval and SLA clock as
streams/settings.py says: 0.025 s, `wall`), on its own topics:

1. **Backlog** (the same-run baseline): simulated traffic of all four input topics, pre-produced,
   then the worker is started and timed by its committed offsets from its first commit until all
   of it is committed (as `scripts.bench orders`): the worker's backlog throughput.
2. **Paced phases**, one per rate (default: 1,000 events/s and half the backlog throughput): a
   producer sends simulated traffic (a new seed per phase) at a fixed rate for `--seconds`, event
   k at `t0 + k / rate`; a `read_committed` consumer (own process) reads the status topic and
   matches each input event to the OrderStatusChanged whose `cause_event_id` is its event_id:
   latency = the producer's send time (= the record timestamp, set to it) -> the status event
   returned by the consumer's poll. Meanwhile `--http-clients` clients (default 16, own process,
   closed loop) GET /orders/{id} of orders the backlog created. Reported per rate: latency
   p50/p95/p99/max, the input lag (input records not yet committed by the worker) when the
   producer stops and at most during the phase, the worker's CPU, and the HTTP p50/p99.

Business time is now, as `o2c simulate --live` makes it: the simulation's times are mapped onto
the wall clock by a monotone map (`WallClockMap`) that puts each in-order event's `occurred_at`
at its scheduled send time, so the traffic is at a fixed rate *and* current (`O2C_SLA_CLOCK=wall`
sees live orders); relative order of every business time is kept (an out-of-order event still
arrives after events that occurred later), and a business day lasts about 1,350 events' worth of
wall time (SPEC SLAs of hours are met). The backlog is mapped the same way, ending now.

The worker is stopped by its PID at the end (SIGTERM, SIGKILL after a minute), and so are the
consumer and HTTP client processes.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import random
import shutil
import sys
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from scripts.bench_harness import (
    BENCH_DIR,
    committed_of,
    cpu_seconds,
    delete_topics_of,
    isolated_settings,
    measure_worker,
    raw_produce,
    scrape,
    worker_env,
)
from streams.contracts.codec import Codec
from streams.contracts.flat import key_of, to_record
from streams.contracts.roles import INPUT_ROLES
from streams.runtime.topics import admin, client_config, producer_config
from streams.simulator.simulate import TIME_FIELDS, SimEvent, SimulationConfig, generate

BACKLOG_SEED = 41
PHASE_SEEDS = (101, 102, 103, 104)
BACKLOG_NOMINAL_RATE = 1_000.0  # events/s the backlog's business times are spread at (ending now)


# --------------------------------------------------------------------------- traffic


class WallClockMap:
    """Business time (epoch ms) -> seconds after the first send, for a stream sent at `rate`.

    Knots: every in-order event (occurred_at >= every earlier one) at its scheduled send offset
    k / rate; linear in between, and beyond the ends at the stream's average speed. Monotone, so
    the order of all business times (deadlines, promised dates) is kept."""

    def __init__(self, events: list[SimEvent], rate: float) -> None:
        self.business: list[int] = []
        self.offsets: list[float] = []
        last = -math.inf
        for k, sim in enumerate(events):
            at = sim.event["occurred_at"]
            if at >= last:
                self.business.append(at)
                self.offsets.append(k / rate)
                last = at
        span_b = self.business[-1] - self.business[0] if self.business else 0
        span_w = self.offsets[-1] - self.offsets[0] if self.offsets else 0.0
        self.ms_per_s = span_b / span_w if span_b > 0 and span_w > 0 else 3_600_000.0  # business ms per s

    def __call__(self, at: int) -> float:
        b, w = self.business, self.offsets
        i = bisect_right(b, at) - 1
        if i < 0:
            return w[0] - (b[0] - at) / self.ms_per_s
        if i >= len(b) - 1:
            return w[-1] + (at - b[-1]) / self.ms_per_s
        if b[i + 1] == b[i]:
            return w[i]
        return w[i] + (w[i + 1] - w[i]) * (at - b[i]) / (b[i + 1] - b[i])

    @property
    def speedup(self) -> float:
        return self.ms_per_s / 1000


@dataclass
class Prepared:
    """One event to send: its topic, key and flat event, with its times as offsets (s) from t0."""

    role: str
    topic: str
    key: bytes
    event: dict[str, Any]
    times: list[tuple[str, float]]

    def at(self, t0_ms: float) -> dict[str, Any]:
        event = dict(self.event)
        for name, offset in self.times:
            event[name] = int(t0_ms + offset * 1000)
        return event


def simulated(events: int, seed: int) -> list[SimEvent]:
    """The first `events` events of the simulated stream of seed `seed` (all four topics)."""
    config = SimulationConfig(orders=math.ceil(events / 8) + 100, seed=seed)
    return list(islice(generate(config), events))


def prepare(settings, sims: list[SimEvent], rate: float) -> tuple[list[Prepared], WallClockMap]:
    mapping = WallClockMap(sims, rate)
    prepared = []
    for sim in sims:
        times = [(name, mapping(sim.event[name])) for name in TIME_FIELDS if sim.event.get(name) is not None]
        prepared.append(
            Prepared(sim.role, settings.topic(sim.role), key_of(sim.role, sim.event).encode(), sim.event, times)
        )
    return prepared, mapping


def produce_backlog(settings, orders: int) -> tuple[int, set[str], float]:
    """Every simulated event of `orders` orders, business times ending now; returns the count,
    the order ids (placed ones: the HTTP clients' known orders) and the map's speedup."""
    sims = list(generate(SimulationConfig(orders=orders, seed=BACKLOG_SEED)))
    prepared, mapping = prepare(settings, sims, BACKLOG_NOMINAL_RATE)
    codec = Codec(settings)
    t0_ms = time.time() * 1000 - len(sims) / BACKLOG_NOMINAL_RATE * 1000
    records = []
    order_ids = set()
    for p in prepared:
        event = p.at(t0_ms)
        records.append((p.topic, p.key, codec.encode(p.role, to_record(p.role, event))))
        if event["event_type"] == "OrderPlaced":
            order_ids.add(event["order_id"])
    raw_produce(settings, records)
    return len(records), order_ids, mapping.speedup


# --------------------------------------------------------------------------- observers (own processes)


def status_reader(settings, ready, stop, out_path: str) -> None:
    """Read the status topic (read_committed) from its end; on `stop`, write cause_event_id ->
    wall ms of the first poll that returned a status event with it."""
    codec = Codec(settings)
    topic = settings.topic("order-status")
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"o2c-bench-live-{time.time_ns()}",  # never joins: partitions assigned
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,  # a fetch returns soon after the records become visible
            },
        )
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
    consumer.poll(0.5)
    ready.set()
    seen: dict[str, float] = {}
    while not stop.is_set():
        msg = consumer.poll(0.05)
        if msg is None:
            continue
        now = time.time() * 1000
        for m in [msg, *consumer.consume(1000, 0)]:
            if m.error() is None:
                cause = codec.decode("order-status", m.value())["cause_event_id"]
                seen.setdefault(cause, now)
    consumer.close()
    Path(out_path).write_text(json.dumps(seen))


def http_clients(base_url: str, order_ids: list[str], clients: int, ready, go, stop, results) -> None:
    """`clients` closed-loop clients, each GET /orders/{id} of a random known order, from `go`
    until `stop`; puts (latencies s, {status: count}, seconds) on `results`."""
    import aiohttp

    async def run() -> None:
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as session:
            async with session.get(f"{base_url}/orders/{order_ids[0]}") as reply:  # warm up
                await reply.read()
            ready.set()
            while not go.is_set():
                await asyncio.sleep(0.005)
            started = time.perf_counter()

            async def client(n: int) -> None:
                pick = random.Random(n).choice
                while not stop.is_set():
                    url = f"{base_url}/orders/{pick(order_ids)}"
                    begun = time.perf_counter()
                    try:
                        async with session.get(url) as reply:
                            await reply.read()
                            status = str(reply.status)
                    except (TimeoutError, aiohttp.ClientError) as exc:
                        status = type(exc).__name__
                    latencies.append(time.perf_counter() - begun)
                    statuses[status] = statuses.get(status, 0) + 1

            await asyncio.gather(*(client(n) for n in range(clients)))
            results.put((latencies, statuses, time.perf_counter() - started))

    asyncio.run(run())


# --------------------------------------------------------------------------- one paced phase


@dataclass
class Phase:
    rate: float
    label: str
    seed: int
    seconds: float
    sent: int = 0
    send_ms: dict[str, float] = field(default_factory=dict)  # event_id -> send wall ms (first send)
    types: dict[str, str] = field(default_factory=dict)  # event_id -> event_type
    duration: float = 0.0  # first -> last send
    behind_max: float = 0.0  # worst lateness of a send against its schedule (s)
    end_lag: int = 0
    max_lag: int = 0
    drain_s: float = math.nan  # last send -> every input record committed
    cpu_share: float = 0.0  # the worker's, of one core, first -> last send
    cpu_others: dict[str, float] = field(default_factory=dict)  # the benchmark's own processes, the machine
    commits: tuple[float, float] = (0.0, 0.0)  # the worker's commits during the phase: count, seconds
    processing: tuple[float, float] = (0.0, 0.0)  # its batches handed to the agents: count, seconds
    slow_commits: dict[float, float] = field(default_factory=dict)  # bound (s) -> commits longer
    gc_pauses: dict[float, float] = field(default_factory=dict)  # bound (s) -> longer pauses
    speedup: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ms, sorted
    unmatched: dict[str, int] = field(default_factory=dict)
    http: tuple[list[float], dict[str, int], float] | None = None


class LagSampler(threading.Thread):
    """Input lag (end offsets - the worker's committed offsets) every 0.25 s."""

    def __init__(self, settings, group: str) -> None:
        super().__init__(daemon=True, name="bench-lag")
        self.group = group
        self.client = admin(settings)
        self.consumer = Consumer(client_config(settings, **{"group.id": f"o2c-bench-lag-{time.time_ns()}"}))
        self.partitions = [
            TopicPartition(topic, p)
            for topic in (settings.topic(role) for role in INPUT_ROLES)
            for p in self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        self.halt = threading.Event()
        self.max_lag = 0

    def lag(self) -> int:
        ends = sum(self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in self.partitions)
        return ends - committed_of(self.client, self.group, [(tp.topic, tp.partition) for tp in self.partitions])

    def run(self) -> None:
        while not self.halt.wait(0.25):
            self.max_lag = max(self.max_lag, self.lag())

    def close(self) -> None:
        self.consumer.close()


def over(port: str, name: str, bounds: tuple[float, ...]) -> dict[float, float]:
    """Observations of histogram `name` (summed over labels) above each of `bounds` (bucket
    edges), from the cumulative buckets; zeros if unreachable."""
    found = {bound: 0.0 for bound in bounds}
    for family in scrape(port):
        if family.name != name.removesuffix("_seconds") and family.name != name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                for bound in bounds:
                    found[bound] += sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) in found:
                found[float(sample.labels["le"])] -= sample.value
    return found


TAIL = (0.05, 0.1)  # s: commits and GC pauses longer than these are counted per phase


def histograms(port: str) -> dict[str, tuple[float, float]]:
    """(count, sum) of the worker's o2c_* histograms, summed over labels; {} if unreachable."""
    found: dict[str, tuple[float, float]] = {}
    for family in scrape(port):
        if family.type == "histogram" and family.name.startswith("o2c_"):
            count = sum(x.value for x in family.samples if x.name.endswith("_count"))
            total = sum(x.value for x in family.samples if x.name.endswith("_sum"))
            found[family.name] = (count, total)
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (Linux /proc/stat), all cores."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def run_phase(settings, phase: Phase, group: str, worker_pid: int, reader_pid: int, port: str,
              known: list[str], http_count: int) -> Phase:
    ctx = multiprocessing.get_context("spawn")
    sims = simulated(math.ceil(phase.rate * phase.seconds), phase.seed)
    prepared, mapping = prepare(settings, sims, phase.rate)
    phase.speedup = mapping.speedup
    codec = Codec(settings)
    producer = Producer({**producer_config(settings), "linger.ms": 1})
    http = None
    if http_count:
        ready, go, stop, results = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
        http = ctx.Process(
            target=http_clients,
            args=(f"http://127.0.0.1:{port}", known, http_count, ready, go, stop, results),
            name="bench-http",
        )
        http.start()
        if not ready.wait(60):
            raise RuntimeError("the HTTP clients did not start")
    sampler = LagSampler(settings, group)
    try:
        sampler.start()
        # Encoded before the first send, with business times for a start a little ahead: the
        # sending loop then costs what a source system's producer costs, not an Avro encoder
        # (the producer shares the 2 cores with the worker and the broker).
        began = time.perf_counter()
        sample = [codec.encode(p.role, to_record(p.role, p.at(0))) for p in prepared[:500]]
        per_event = (time.perf_counter() - began) / max(len(sample), 1)
        t0_ms = time.time() * 1000 + (per_event * len(prepared) * 1.3 + 0.5) * 1000
        outgoing = []
        for p in prepared:
            event = p.at(t0_ms)
            outgoing.append((p.topic, p.key, codec.encode(p.role, to_record(p.role, event)),
                             event["event_id"], event["event_type"]))
        time.sleep(max(0.0, t0_ms / 1000 - time.time()))
        hist0 = histograms(port)
        slow0 = (over(port, "o2c_commit_seconds", TAIL), over(port, "o2c_gc_pause_seconds", (0.01, 0.05)))
        cpu0 = cpu_seconds(worker_pid)
        others0 = (time.process_time(), cpu_seconds(reader_pid), cpu_seconds(http.pid) if http else 0.0)
        busy0, total0 = machine_busy()
        if http is not None:
            go.set()
        start = time.perf_counter()
        interval = 1.0 / phase.rate
        send_ms, types = phase.send_ms, phase.types
        for k, (topic, key, value, event_id, event_type) in enumerate(outgoing):
            lateness = time.perf_counter() - (start + k * interval)
            if lateness < 0:
                time.sleep(-lateness)
            else:
                phase.behind_max = max(phase.behind_max, lateness)
            now_ms = time.time() * 1000
            while True:
                try:
                    producer.produce(topic, value=value, key=key, timestamp=int(now_ms))
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
            if event_id not in send_ms:
                send_ms[event_id] = now_ms
                types[event_id] = event_type
        last_send = time.perf_counter()
        phase.duration = d = last_send - start
        phase.sent = len(prepared)
        producer.flush(30)
        # At the last send: the processes' CPU, the HTTP clients stop, the input lag.
        phase.cpu_share = (cpu_seconds(worker_pid) - cpu0) / d
        busy1, total1 = machine_busy()
        phase.cpu_others = {
            "paced producer (this process)": (time.process_time() - others0[0]) / d,
            "status reader": (cpu_seconds(reader_pid) - others0[1]) / d,
            **({"HTTP clients": (cpu_seconds(http.pid) - others0[2]) / d} if http else {}),
            "machine, all processes": (busy1 - busy0) / d,
            "cores": (total1 - total0) / d,
        }
        if http is not None:
            stop.set()
        sampler.halt.set()
        sampler.join()
        phase.end_lag = sampler.lag()
        hist1 = histograms(port)

        def delta(name: str) -> tuple[float, float]:
            (c0, s0), (c1, s1) = hist0.get(name, (0, 0)), hist1.get(name, (0, 0))
            return c1 - c0, s1 - s0

        phase.commits = delta("o2c_commit_seconds")
        slow1 = (over(port, "o2c_commit_seconds", TAIL), over(port, "o2c_gc_pause_seconds", (0.01, 0.05)))
        phase.slow_commits = {b: slow1[0][b] - slow0[0].get(b, 0) for b in slow1[0]}
        phase.gc_pauses = {b: slow1[1][b] - slow0[1].get(b, 0) for b in slow1[1]}
        phase.processing = delta("o2c_consume_to_produce_seconds")
    finally:
        sampler.halt.set()
        if sampler.is_alive():
            sampler.join()
        if http is not None:
            stop.set()
            try:
                phase.http = results.get(timeout=30)
            finally:
                http.join(10)
                if http.is_alive():
                    http.terminate()  # by its PID
                    http.join(5)
    phase.max_lag = max(sampler.max_lag, phase.end_lag)
    lag = phase.end_lag
    while lag > 0 and time.perf_counter() - last_send < 120:
        time.sleep(0.05)
        lag = sampler.lag()
    sampler.close()
    if lag == 0:
        phase.drain_s = time.perf_counter() - last_send
    return phase


def match(phase: Phase, seen: dict[str, float]) -> None:
    latencies = []
    unmatched: dict[str, int] = {}
    for event_id, sent in phase.send_ms.items():
        got = seen.get(event_id)
        if got is None:
            event_type = phase.types[event_id]
            unmatched[event_type] = unmatched.get(event_type, 0) + 1
        else:
            latencies.append(got - sent)
    phase.latencies = sorted(latencies)
    phase.unmatched = unmatched


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


# --------------------------------------------------------------------------- the benchmark


def bench_live(rates: list[str], seconds: float, backlog_orders: int, http_count: int) -> None:
    settings = isolated_settings()
    workdir = BENCH_DIR / settings.topic_prefix.rstrip(".")
    workdir.mkdir(parents=True, exist_ok=True)
    env = worker_env(settings, f"{settings.app_id}-live", workdir / "data", "exactly_once")
    env.pop("O2C_SLA_CLOCK")  # the default (wall): the live traffic's business time is now
    group = env["O2C_APP_ID"]
    backlog_events, backlog_orders_placed, backlog_speedup = produce_backlog(settings, backlog_orders)
    known = sorted(backlog_orders_placed)
    phases: list[Phase] = []
    seen: dict[str, float] = {}

    def live(proc, backlog) -> None:
        ctx = multiprocessing.get_context("spawn")
        ready, stop = ctx.Event(), ctx.Event()
        out_path = workdir / "status-seen.json"
        reader = ctx.Process(target=status_reader, args=(settings, ready, stop, str(out_path)), name="bench-reader")
        reader.start()
        try:
            if not ready.wait(60):
                raise RuntimeError("the status reader did not start")
            for n, spec in enumerate(rates):
                if spec == "half":
                    rate, label = backlog.rate / 2, "half the backlog throughput"
                else:
                    rate, label = float(spec), "--rate"
                if not math.isfinite(rate) or rate <= 0:
                    raise RuntimeError(f"no usable rate from {spec!r} (backlog {backlog.rate} events/s)")
                phase = Phase(rate, label, PHASE_SEEDS[n % len(PHASE_SEEDS)] + 10 * (n // len(PHASE_SEEDS)), seconds)
                phases.append(
                    run_phase(settings, phase, group, proc.pid, reader.pid, env["O2C_WEB_PORT"], known, http_count)
                )
                time.sleep(1.0)  # the last commit's status events reach the reader
        finally:
            stop.set()
            reader.join(30)
            if reader.is_alive():
                reader.terminate()  # by its PID
                reader.join(5)
        if out_path.exists():
            seen.update(json.loads(out_path.read_text()))
            out_path.unlink()

    backlog = measure_worker(
        settings, "live-worker", [sys.executable, "-m", "streams.cli", "worker"], env, workdir,
        roles=INPUT_ROLES, counters=True, after=live,
    )
    for phase in phases:
        match(phase, seen)

    given = " ".join(f"--rate {r}" for r in rates)
    print(
        f"$ python -m scripts.bench live --seconds {seconds:g} --backlog-orders {backlog_orders}"
        f" --http-clients {http_count} {given}"
    )
    print(
        f"  one o2c worker, default settings (exactly_once, commit interval {settings.commit_interval:g} s,"
        f" O2C_SLA_CLOCK=wall), {settings.partitions} partitions; simulated traffic of all four input topics,"
        " business time = now"
    )
    print(
        f"  baseline, backlog: {backlog_events:,} events of {backlog_orders:,} orders pre-produced, then the worker"
        f" started: {backlog.rate:,.0f} events/s from its first commit until all committed ({backlog.seconds:.1f} s"
        f" after {backlog.ready_s:.1f} s startup; worker CPU {backlog.cpu_share:.0%} of a core)"
    )
    print(
        "  paced: event k sent at t0 + k/rate (pre-encoded; producer linger 1 ms; record timestamp = send time); latency ="
        " send -> OrderStatusChanged with cause_event_id = its event_id returned by a read_committed consumer"
        " (own process, fetch.wait.max.ms 10); lag = input records not yet committed by the worker"
    )
    for phase in phases:
        lat = phase.latencies
        achieved = phase.sent / phase.duration if phase.duration else math.nan
        print(
            f"  {phase.rate:,.0f} events/s ({phase.label}; {phase.seconds:g} s, seed {phase.seed}, a business day"
            f" per {86_400 / phase.speedup:.1f} s): sent {phase.sent:,} at {achieved:,.0f}/s (at most"
            f" {phase.behind_max * 1000:,.0f} ms behind schedule)"
        )
        print(
            f"    latency: p50 {pct(lat, 0.5):,.0f} ms, p95 {pct(lat, 0.95):,.0f} ms, p99 {pct(lat, 0.99):,.0f} ms,"
            f" max {pct(lat, 1.0):,.0f} ms ({len(lat):,} events matched; without a status event: "
            + ", ".join(f"{n:,} {t}" for t, n in sorted(phase.unmatched.items(), key=lambda i: -i[1]))
            + ")"
        )
        held = phase.end_lag <= phase.rate  # at most one second of input behind when the producer stops
        drain = f"{phase.drain_s:.2f} s" if math.isfinite(phase.drain_s) else "not within 120 s"
        print(
            f"    lag: {phase.end_lag:,} records at the end ({phase.end_lag / phase.rate:.2f} s of input), at most"
            f" {phase.max_lag:,} during the phase; drained {drain} after the last send; ingest rate held:"
            f" {'yes' if held else 'NO'}; worker CPU {phase.cpu_share:.0%} of a core"
        )
        if phase.http is not None:
            http_lat, statuses, http_s = phase.http
            http_lat = sorted(x * 1000 for x in http_lat)
            print(
                f"    HTTP GET /orders/{{id}}, {http_count} closed-loop clients on {len(known):,} known orders:"
                f" {len(http_lat):,} requests ({len(http_lat) / http_s:,.0f}/s), p50 {pct(http_lat, 0.5):,.1f} ms,"
                f" p99 {pct(http_lat, 0.99):,.1f} ms, max {pct(http_lat, 1.0):,.0f} ms; answers "
                + ", ".join(f"{k}: {v:,}" for k, v in sorted(statuses.items()))
            )
        (commits, commit_s), (batches, batch_s) = phase.commits, phase.processing
        if commits:
            print(
                f"    worker runtime thread: {commits / phase.duration:,.1f} commits/s of {commit_s / commits * 1000:,.1f}"
                f" ms on average ({commit_s / phase.duration:.0%} of the time), {batches / phase.duration:,.0f}"
                f" batches/s of {batch_s / max(batches, 1) * 1000:,.1f} ms ({batch_s / phase.duration:.0%} of the time)"
            )
            print(
                "    tails: commits longer than "
                + ", ".join(f"{b * 1000:g} ms: {n:,.0f}" for b, n in sorted(phase.slow_commits.items()))
                + f" (of {commits:,.0f}); GC pauses longer than "
                + ", ".join(f"{b * 1000:g} ms: {n:,.0f}" for b, n in sorted(phase.gc_pauses.items()))
            )
        others = dict(phase.cpu_others)
        cores = others.pop("cores", 0.0)
        print(
            "    CPU besides the worker (share of one core): "
            + ", ".join(f"{name} {share:.0%}" for name, share in others.items())
            + f" of {cores:.0f} cores"
        )
        print(
            f"    ratios: rate / backlog throughput {phase.rate / backlog.rate:.2f}; worker CPU / backlog CPU"
            f" {phase.cpu_share / backlog.cpu_share if backlog.cpu_share else math.nan:.2f}; p50 latency / commit"
            f" interval {pct(lat, 0.5) / 1000 / settings.commit_interval:.1f}"
        )
    c = backlog.counters
    print(
        "  worker totals: "
        + ", ".join(
            f"{c.get(n, 0):,.0f} {w}"
            for n, w in (
                ("o2c_events_in", "events decoded"),
                ("o2c_status_changes", "status events"),
                ("o2c_sla_breaches", "SLA breaches"),
                ("o2c_business_exceptions", "business exceptions"),
                ("o2c_dead_letters", "dead letters"),
                ("o2c_aborted_transactions", "aborted transactions"),
            )
        )
        + f"; backlog business time ran {backlog_speedup:,.0f}x the wall clock"
    )
    print(f"  worker log: {workdir}/live-worker.log")
    shutil.rmtree(workdir / "data", ignore_errors=True)
    delete_topics_of(settings)


# --------------------------------------------------------------------------- catch-up under queries


def bench_catchup(orders: int, http_count: int) -> None:
    """One worker (defaults) catching up on a backlog while `http_count` clients query it from
    the start: input events/s until everything is committed, the HTTP answers, and what the
    commits did (aborted transactions, longest commit against the transaction timeout)."""
    settings = isolated_settings()
    workdir = BENCH_DIR / settings.topic_prefix.rstrip(".")
    workdir.mkdir(parents=True, exist_ok=True)
    env = worker_env(settings, f"{settings.app_id}-catchup", workdir / "data", "exactly_once")
    env.pop("O2C_SLA_CLOCK")
    events, placed, _ = produce_backlog(settings, orders)
    known = sorted(placed)
    ctx = multiprocessing.get_context("spawn")
    ready, go, stop_clients = ctx.Event(), ctx.Event(), ctx.Event()
    results = ctx.Queue()
    base_url = f"http://127.0.0.1:{env['O2C_WEB_PORT']}"
    clients = ctx.Process(
        target=http_clients, args=(base_url, known, http_count, ready, go, stop_clients, results), name="bench-http"
    )

    def start_clients(proc) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the clients' warm-up request needs the web server
            try:
                import urllib.request

                urllib.request.urlopen(f"{base_url}/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        clients.start()
        if not ready.wait(60):
            raise RuntimeError("the HTTP clients did not start")
        go.set()

    stats: dict[str, Any] = {}

    def finish(proc, run) -> None:
        stop_clients.set()
        stats["http"] = results.get(timeout=60)
        stats["histograms"] = histograms(env["O2C_WEB_PORT"])
        stats["max_commit"] = max_bucket(env["O2C_WEB_PORT"], "o2c_commit_seconds")

    try:
        run = measure_worker(
            settings, "catchup-worker", [sys.executable, "-m", "streams.cli", "worker"], env, workdir,
            roles=INPUT_ROLES, counters=True, after=finish, started_hook=start_clients,
        )
    finally:
        stop_clients.set()
        if clients.is_alive():
            clients.join(30)
        if clients.is_alive():
            clients.terminate()  # by its PID
    latencies, statuses, seconds = stats["http"]
    latencies = sorted(x * 1000 for x in latencies)
    commits, commit_s = stats["histograms"].get("o2c_commit_seconds", (0, 0.0))
    print(f"$ python -m scripts.bench catchup --orders {orders} --http-clients {http_count}")
    print(
        f"  one o2c worker, default settings (exactly_once, commit interval {settings.commit_interval:g} s,"
        f" transaction timeout {settings.transaction_timeout:g} s), catching up on {events:,} input events of"
        f" {orders:,} orders while {http_count} closed-loop clients GET /orders/{{id}} from its start"
    )
    print(
        f"  {run.rate:,.0f} input events/s until every input offset was committed ({run.seconds:.1f} s,"
        f" worker CPU {run.cpu_share:.0%} of a core)"
    )
    print(
        f"  HTTP: {len(latencies):,} requests ({len(latencies) / seconds:,.0f}/s), p50 {pct(latencies, 0.5):,.1f} ms,"
        f" p99 {pct(latencies, 0.99):,.1f} ms, max {pct(latencies, 1.0):,.0f} ms; answers "
        + ", ".join(f"{k}: {v:,}" for k, v in sorted(statuses.items()))
    )
    aborted = run.counters.get("o2c_aborted_transactions", 0.0)
    print(
        f"  commits: {commits:,.0f}, {commit_s / max(commits, 1) * 1000:,.1f} ms on average, the longest under"
        f" {stats['max_commit']:g} s (histogram bucket); aborted transactions: {aborted:,.0f}"
    )


def max_bucket(port: str, name: str) -> float:
    """Upper bound of the lowest histogram bucket holding every observation of `name`."""
    for family in scrape(port, missing_ok=False):
        if family.name != name.removesuffix("_seconds") and family.name != name:
            continue
        buckets = sorted(
            (float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")
        )
        total = buckets[-1][1] if buckets else 0
        return next((le for le, count in buckets if count >= total), math.inf)
    return math.nan
