"""Benchmarks behind `make bench`. Each prints its figures with the command that made them and a
ratio against a baseline measured in the same run, on the same broker (the machine is shared and
noisy, so absolute numbers wander; ratios much less).

    python -m scripts.bench produce  [--events N]   o2c produce vs raw confluent-kafka produce
    python -m scripts.bench simulate [--orders N]   o2c simulate vs raw produce of the same count
    python -m scripts.bench orders [--events N] [--guarantee exactly_once|at_least_once|both]
                                   [--no-reference]
                                                    the order agent (`o2c worker`) vs a minimal
                                                    one-table-write-per-event Faust agent
                                                    (scripts/bench_baseline_app.py), plus a no-op
                                                    Faust agent as the reference ceiling
    python -m scripts.bench inventory [--orders N]  the whole pipeline with the inventory side on
                                                    simulated traffic (all four input topics) vs
                                                    the naive agent over the same topics
                                                    (scripts/bench_inventory.py)
    python -m scripts.bench inventory-agent [--orders N]
                                                    the inventory agent alone on the ledger events
                                                    and allocation messages of simulated traffic vs
                                                    the naive agent over those two topics
    python -m scripts.bench allocation-latency [--orders N] [--commit-interval S]
                                                    OrderAccepted produced -> ALLOCATED visible
                                                    over HTTP, median and p99
    python -m scripts.bench catchup [--orders N] [--http-clients N]
                                                    one worker catching up on a backlog while HTTP
                                                    clients query it: rate, HTTP latency, commits
    python -m scripts.bench live [--seconds S] [--backlog-orders N] [--http-clients N] [--rate R|half]...
                                                    one worker (defaults) under paced live traffic:
                                                    latency input -> status event visible at two
                                                    rates, end lag, HTTP latency under load, vs
                                                    its backlog throughput (scripts/bench_live.py)
    python -m scripts.bench sinks [--events N] [--orders N]
                                                    the webhook and postgres sinks vs the sink
                                                    runner delivering nothing (scripts/bench_sinks.py)

`orders` runs each worker as a subprocess (one after the other, never side by side) over the same
pre-produced simulated events and times it by its consumer group's committed offsets, from its
first commit (so startup, assignment and recovery are left out for both) until every input
record is committed. `O2C_BENCH_PROFILE=pyinstrument|cprofile` profiles the order worker's runtime
thread (where records are consumed, processed and committed) over that same window (reports land
in .cache/bench/).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition

from streams.contracts.codec import Codec
from streams.contracts.flat import key_of, to_record
from streams.runtime.topics import ALL_ROLES, admin, client_config, create_topics, producer_config
from streams.settings import load_settings
from streams.simulator.simulate import SimulationConfig, generate

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
    producer = Producer(producer_config(settings))
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


# --------------------------------------------------------------------------- orders

ORDER_ROLES = ("orders", "shipments", "payments")
BENCH_DIR = REPO / ".cache" / "bench"
# Signals the profiled worker starts / stops its profiler on (mode's Worker owns USR1 and USR2).
PROFILE_START = signal.SIGRTMIN + 1
PROFILE_STOP = signal.SIGRTMIN + 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def preproduce_orders(settings, events: int, seed: int = 7) -> int:
    """The first `events` simulated orders/shipments/payments events (inventory left out: neither
    agent reads it), encoded once and produced straight to the isolated topics."""
    codec = Codec(settings)
    config = SimulationConfig(orders=math.ceil(events / 8.5) + 100, seed=seed)  # ~9.4 events/order
    wanted = islice((s for s in generate(config) if s.role in ORDER_ROLES), events)
    encoded = [
        (
            settings.topic(s.role),
            key_of(s.role, s.event).encode(),
            codec.encode(s.role, to_record(s.role, s.event)),
        )
        for s in wanted
    ]
    raw_produce(settings, encoded)
    return len(encoded)


def end_offsets(settings, roles: tuple[str, ...] = ORDER_ROLES) -> dict[tuple[str, int], int]:
    consumer = Consumer(client_config(settings, **{"group.id": f"o2c-bench-{uuid.uuid4().hex}"}))
    try:
        ends = {}
        for role in roles:  # a SPEC topic's role, or a full topic name
            topic = settings.topic(role) if role in ALL_ROLES else role
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                ends[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return ends
    finally:
        consumer.close()


def committed_of(client, group: str, partitions: list[tuple[str, int]]) -> int:
    """Sum of the group's committed offsets over the input partitions (0 where none yet)."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
    try:
        result = client.list_consumer_group_offsets([request], request_timeout=5)[group].result()
    except KafkaException:
        return 0
    return sum(max(tp.offset, 0) for tp in result.topic_partitions if tp.error is None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Run:
    """One measured worker run: committed-offset samples from its first commit to the end."""

    label: str
    events: int
    ready_s: float = 0.0  # worker start -> first commit seen (startup, left out of the rate)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (monotonic s, committed)
    cpu: list[float] = field(default_factory=list)  # worker CPU seconds at the first and last sample
    counters: dict[str, float] = field(default_factory=dict)  # the worker's o2c_* metrics at the end
    after_s: float = 0.0  # first commit -> end of the `after` step (measure_worker)

    @property
    def cpu_share(self) -> float:
        """Share of one core the worker process used over the measured window."""
        return (self.cpu[-1] - self.cpu[0]) / self.seconds if len(self.cpu) == 2 and self.seconds else 0.0

    @property
    def rate(self) -> float:
        """Events/s over the whole input: first commit -> everything committed."""
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else float("nan")  # nan: input too small to time

    @property
    def steady_rate(self) -> float:
        """Events/s between the first and the last commit that was still short of the end (leaves
        out the wait for the final commit tick, up to one commit interval after the last event)."""
        inner = [s for s in self.samples if s[1] < self.samples[-1][1]]
        changes = [s for i, s in enumerate(inner) if i == 0 or s[1] != inner[i - 1][1]]
        if len(changes) < 2:
            return self.rate
        (t0, c0), (t1, c1) = changes[0], changes[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else self.rate

    @property
    def seconds(self) -> float:
        return self.samples[-1][0] - self.samples[0][0]


def o2c_counters(port: str) -> dict[str, float]:
    """Totals of the worker's o2c_* Prometheus counters (summed over labels); {} if unreachable."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("o2c_"):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    totals[family.name] = totals.get(family.name, 0.0) + sample.value
    return totals


def measure_worker(
    settings,
    label: str,
    argv: list[str],
    env: dict[str, str],
    workdir: Path,
    *,
    profiled: bool = False,
    counters: bool = False,
    roles: tuple[str, ...] = ORDER_ROLES,
    after: Callable[[subprocess.Popen, Run], None] | None = None,
    started_hook: Callable[[subprocess.Popen], None] | None = None,
) -> Run:
    """Start a worker subprocess (then `started_hook(process)`), time it by its committed
    offsets of the `roles` topics, run `after(worker process, run)` (still timed:
    `run.after_s`), stop it (by PID)."""
    ends = end_offsets(settings, roles)
    total = sum(ends.values())
    group = env["O2C_APP_ID"]
    client = admin(settings)
    log_path = workdir / f"{label}.log"
    run = Run(label, total)
    with open(log_path, "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, preexec_fn=ends_with_parent
        )
        try:
            if started_hook is not None:
                started_hook(proc)
            last_change = started
            previous = -1
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{label} exited with {proc.returncode}; see {log_path}")
                committed = committed_of(client, group, list(ends))
                now = time.monotonic()
                if committed != previous:
                    last_change, previous = now, committed
                if committed > 0:
                    if not run.samples:
                        run.ready_s = now - started
                        run.cpu.append(cpu_seconds(proc.pid))
                        if profiled:
                            proc.send_signal(PROFILE_START)
                    run.samples.append((now, committed))
                    if committed >= total:
                        run.cpu.append(cpu_seconds(proc.pid))
                        break
                if now - last_change > 180:
                    raise RuntimeError(f"{label}: no committed progress for 180 s; see {log_path}")
                time.sleep(0.05)
            if after is not None:
                after(proc, run)
                run.after_s = time.monotonic() - run.samples[0][0]
            if profiled:
                proc.send_signal(PROFILE_STOP)
                wait_for_file(Path(f"{env['O2C_BENCH_PROFILE_OUT']}.txt"), proc)
            if counters:
                run.counters = o2c_counters(env["O2C_WEB_PORT"])
        finally:
            stop(proc)
    errors = [
        line
        for line in log_path.read_text(errors="replace").splitlines()
        if "[ERROR]" in line or "[CRITICAL]" in line or "Traceback" in line
    ]
    if errors:
        print(f"  warning: {label} logged {len(errors)} error lines, first: {errors[0][:200]} ({log_path})")
    return run


def counter_summary(counters: dict[str, float]) -> str:
    """A worker's event counters (`Run.counters`) as one line."""
    return ", ".join(
        f"{counters.get(name, 0):,.0f} {what}"
        for name, what in (
            ("o2c_events_in", "events decoded"),
            ("o2c_status_changes", "status events"),
            ("o2c_business_exceptions", "business exceptions"),
            ("o2c_duplicate_events", "duplicates"),
            ("o2c_dead_letters", "dead letters"),
        )
    )


def ends_with_parent() -> None:
    """In a worker about to start: SIGTERM it when the benchmark process dies, however it dies
    (a crash of the benchmark once left a worker running, and its CPU in the next run)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until `path` exists (the profiled worker wrote its report), the worker exits or `timeout`."""
    deadline = time.monotonic() + timeout
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the worker (a clean Faust shutdown), SIGKILL it after a minute."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def worker_env(settings, app_id: str, data_dir: Path, guarantee: str, **extra: str) -> dict[str, str]:
    """The environment of one worker: its own app id (= consumer group), data dir and web port, the
    bench's topics; everything else (log level included) as `o2c worker` would get it."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "O2C_TOPIC_PREFIX": settings.topic_prefix,
        "O2C_APP_ID": app_id,
        "O2C_DATA_DIR": str(data_dir),
        "O2C_WEB_PORT": str(free_port()),
        "O2C_PROCESSING_GUARANTEE": guarantee,
        # The simulated traffic is in the past: on the wall clock every deadline would be long
        # overdue (~6 breaches per order); stream time breaches what the simulation let lapse.
        "O2C_SLA_CLOCK": "event",
        **extra,
    }


TARGET_RATIO = 3.0  # the target: order agent >= 3x the naive agent, with exactly-once on


def bench_orders(events: int, guarantees: list[str], reference: bool = True) -> None:
    settings = isolated_settings()
    workdir = BENCH_DIR / settings.topic_prefix.rstrip(".")
    workdir.mkdir(parents=True, exist_ok=True)
    produced = preproduce_orders(settings, events)
    profile = os.environ.get("O2C_BENCH_PROFILE")
    baseline_argv = [sys.executable, "-m", "scripts.bench_baseline_app"]
    results = {}
    for guarantee in guarantees:
        tag = guarantee.replace("_", "")

        def env(name: str, tag: str = tag, guarantee: str = guarantee, **extra: str) -> dict[str, str]:
            app_id = f"{settings.app_id}-{name}-{tag}"  # one consumer group per run: all input each
            return worker_env(settings, app_id, workdir / f"data-{name}-{tag}", guarantee, **extra)

        runs = {"naive": measure_worker(settings, f"naive-{guarantee}", baseline_argv, env("naive"), workdir)}
        profiled = bool(profile) and guarantee == guarantees[0]
        argv = [sys.executable, "-m", "streams.cli", "worker"]  # = `o2c worker`
        extra = {}
        if profiled:
            argv = [sys.executable, "-m", "scripts.bench", "profiled-worker"]
            extra = {"O2C_BENCH_PROFILE_OUT": str(workdir / f"profile-orders-{guarantee}")}
        runs["orders"] = measure_worker(
            settings,
            f"orders-{guarantee}",
            argv,
            env("orders", **extra),
            workdir,
            profiled=profiled,
            counters=True,
        )
        if reference:
            runs["noop"] = measure_worker(
                settings, f"noop-{guarantee}", baseline_argv, env("noop", O2C_BENCH_AGENT="noop"), workdir
            )
        results[guarantee] = runs
        for sub in workdir.glob(f"data-*-{tag}"):
            shutil.rmtree(sub, ignore_errors=True)

    joined = "both" if len(guarantees) == 2 else guarantees[0]
    print(f"$ python -m scripts.bench orders --events {events} --guarantee {joined}")
    print(
        f"  input: {produced:,} simulated orders/shipments/payments events on {settings.partitions} partitions"
        f" ({settings.topic_prefix}*), commit interval {settings.commit_interval:g} s; events/s from each"
        " worker's first commit until all input is committed"
    )
    names = {
        "naive": "baseline: naive Faust agent, one table write per event",
        "orders": "order agent (o2c worker)",
        "noop": "reference: no-op Faust agent (Faust's own per-event cost, the ceiling)",
    }
    for guarantee, runs in results.items():
        print(f"  {guarantee}:")
        for key, run in runs.items():
            print(
                f"    {names[key]}: {run.rate:,.0f} events/s ({run.events:,} events in {run.seconds:.1f} s after"
                f" {run.ready_s:.1f} s startup; {run.steady_rate:,.0f} events/s between commits;"
                f" worker CPU {run.cpu_share:.0%} of a core)"
            )
        if runs["orders"].counters:
            print(f"    order agent output: {counter_summary(runs['orders'].counters)}")
        ratio = runs["orders"].rate / runs["naive"].rate
        line = f"    ratio order agent / baseline: {ratio:.2f}"
        if "noop" in runs:
            line += f" (no-op reference / baseline: {runs['noop'].rate / runs['naive'].rate:.2f})"
        if guarantee == "exactly_once":
            line += f"; target >= {TARGET_RATIO:g}: {'met' if ratio >= TARGET_RATIO else 'NOT met'}"
        print(line)
    if profile:
        print(f"  profile of the order worker: {workdir}/profile-orders-{guarantees[0]}.*")
    print(f"  worker logs: {workdir}")
    delete_topics_of(settings)


def delete_topics_of(settings) -> None:
    """Best effort: drop this run's topics (its unique prefix, and its workers' internal topics)."""
    client = admin(settings)
    mine = [
        name
        for name in client.list_topics(timeout=10).topics
        if name.startswith(settings.topic_prefix) or name.startswith(f"{settings.app_id}-")
    ]
    if mine:
        for future in client.delete_topics(mine, operation_timeout=30).values():
            try:
                future.result()
            except KafkaException:
                pass


def profiled_worker() -> int:
    """`o2c worker` with a profiler on its runtime thread (where consuming, processing and commits
    run; streams/runtime/engine.py), started on PROFILE_START and dumped on PROFILE_STOP
    (O2C_BENCH_PROFILE=pyinstrument|cprofile, reports at O2C_BENCH_PROFILE_OUT.*).

    Both profilers follow only the thread that starts them, so the signal handlers (main thread)
    only flip a flag, and the runtime thread starts or stops the profiler before its next step."""
    from streams.cli.main import main as cli_main
    from streams.runtime import engine

    kind = os.environ.get("O2C_BENCH_PROFILE", "pyinstrument")
    out = os.environ["O2C_BENCH_PROFILE_OUT"]
    if kind == "cprofile":
        import cProfile

        profiler = cProfile.Profile()

        def start() -> None:
            profiler.enable()

        def stop() -> None:
            profiler.disable()
            profiler.dump_stats(f"{out}.pstats")
            import pstats

            with open(f"{out}.txt.tmp", "w") as fh:
                stats = pstats.Stats(profiler, stream=fh)
                stats.sort_stats("tottime").print_stats(60)
                stats.sort_stats("cumulative").print_stats(80)
            os.replace(f"{out}.txt.tmp", f"{out}.txt")
    else:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")

        def start() -> None:
            profiler.start()

        def stop() -> None:
            session = profiler.stop()
            session.save(f"{out}.pyisession")  # re-render: pyinstrument --load FILE -r text ...
            with open(f"{out}.txt.tmp", "w") as fh:
                fh.write(profiler.output_text(unicode=True, show_all=False))
            os.replace(f"{out}.txt.tmp", f"{out}.txt")

    wanted = {"on": False, "running": False}
    step = engine.Runtime._step

    def profiled_step(self: engine.Runtime) -> None:
        if wanted["on"] != wanted["running"]:
            (start if wanted["on"] else stop)()
            wanted["running"] = wanted["on"]
        step(self)

    engine.Runtime._step = profiled_step  # this process only
    signal.signal(PROFILE_START, lambda *_: wanted.update(on=True))
    signal.signal(PROFILE_STOP, lambda *_: wanted.update(on=False))
    return cli_main(["worker"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench")
    sub = parser.add_subparsers(dest="bench", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--events", type=int, default=100_000)
    p = sub.add_parser("simulate")
    p.add_argument("--orders", type=int, default=10_000)
    p = sub.add_parser("orders")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--guarantee", choices=("exactly_once", "at_least_once", "both"), default="exactly_once")
    p.add_argument("--no-reference", action="store_true", help="skip the no-op Faust agent reference run")
    p = sub.add_parser("inventory")
    p.add_argument("--orders", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=3, help="runs of the o2c worker (medians reported)")
    p = sub.add_parser("inventory-agent")
    p.add_argument("--orders", type=int, default=10_000)
    p = sub.add_parser("allocation-latency")
    p.add_argument("--orders", type=int, default=1_000)
    p.add_argument("--commit-interval", type=float, action="append")
    p = sub.add_parser("live")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each paced phase")
    p.add_argument("--backlog-orders", type=int, default=3_000, help="orders of the backlog (the baseline)")
    p.add_argument("--http-clients", type=int, default=16, help="concurrent GET /orders/{id} clients (0: none)")
    p.add_argument(
        "--rate",
        action="append",
        help="input events/s of a paced phase, or `half` (of the backlog throughput); default: 1000 and half",
    )
    p = sub.add_parser("catchup")
    p.add_argument("--orders", type=int, default=20_000, help="orders of the backlog")
    p.add_argument("--http-clients", type=int, default=16, help="concurrent GET /orders/{id} clients")
    p = sub.add_parser("sinks")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--orders", type=int, default=5_000)
    sub.add_parser("profiled-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # figures reach a log even if the process dies later
    if args.bench == "produce":
        bench_produce(args.events)
    elif args.bench == "simulate":
        bench_simulate(args.orders)
    elif args.bench == "orders":
        both = ["exactly_once", "at_least_once"]
        guarantees = both if args.guarantee == "both" else [args.guarantee]
        bench_orders(args.events, guarantees, reference=not args.no_reference)
    elif args.bench == "inventory":
        from scripts.bench_inventory import bench_inventory

        bench_inventory(args.orders, args.runs)
    elif args.bench == "inventory-agent":
        from scripts.bench_inventory import bench_inventory_agent

        bench_inventory_agent(args.orders)
    elif args.bench == "allocation-latency":
        from scripts.bench_inventory import bench_allocation_latency

        bench_allocation_latency(args.orders, args.commit_interval or [load_settings().commit_interval])
    elif args.bench == "live":
        from scripts.bench_live import bench_live

        bench_live(args.rate or ["1000", "half"], args.seconds, args.backlog_orders, args.http_clients)
    elif args.bench == "catchup":
        from scripts.bench_live import bench_catchup

        bench_catchup(args.orders, args.http_clients)
    elif args.bench == "sinks":
        from scripts.bench_sinks import bench_sinks

        bench_sinks(args.events, args.orders)
    elif args.bench == "profiled-worker":
        return profiled_worker()
    return 0


if __name__ == "__main__":
    sys.exit(main())
