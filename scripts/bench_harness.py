"""What every benchmark shares: isolated topics, pre-produced simulated input, a worker run as a
subprocess and timed by its consumer group's committed offsets, its CPU, memory and Prometheus
figures, and the profiled worker. The benchmarks themselves are `scripts/bench*.py`; `make bench`
and `python -m scripts.bench` run them.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streams.contracts.codec import Codec
from streams.contracts.flat import key_of, to_record
from streams.contracts.roles import INPUT_ROLES, ORDER_ROLES, TOPIC_ROLES
from streams.runtime.topics import admin, client_config, create_topics, producer_config
from streams.settings import load_settings
from streams.simulator.simulate import SimEvent, SimulationConfig, generate

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


BENCH_DIR = REPO / ".cache" / "bench"
# Signals the profiled worker starts / stops its profiler on (mode's Worker owns USR1 and USR2).
PROFILE_START = signal.SIGRTMIN + 1
PROFILE_STOP = signal.SIGRTMIN + 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode_simulated(settings, sims: Iterable[SimEvent]) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, Avro value) of simulated events, encoded once, ready for `raw_produce`."""
    codec = Codec(settings)
    return [
        (settings.topic(s.role), key_of(s.role, s.event).encode(), codec.encode(s.role, to_record(s.role, s.event)))
        for s in sims
    ]


def preproduce_orders(settings, events: int, seed: int = 7) -> int:
    """The first `events` simulated orders/shipments/payments events (inventory left out: neither
    agent reads it), produced straight to the isolated topics."""
    config = SimulationConfig(orders=math.ceil(events / 8.5) + 100, seed=seed)  # ~9.4 events/order
    records = encode_simulated(settings, islice((s for s in generate(config) if s.role in ORDER_ROLES), events))
    raw_produce(settings, records)
    return len(records)


def preproduce_all(settings, orders: int, seed: int = 7) -> dict[str, int]:
    """Every simulated event of `orders` orders, all four topics, produced raw; counts by role."""
    sims = list(generate(SimulationConfig(orders=orders, seed=seed)))
    raw_produce(settings, encode_simulated(settings, sims))
    counts = dict.fromkeys(INPUT_ROLES, 0)
    for sim in sims:
        counts[sim.role] += 1
    return counts


def end_offsets(settings, roles: tuple[str, ...] = ORDER_ROLES) -> dict[tuple[str, int], int]:
    consumer = Consumer(client_config(settings, **{"group.id": f"o2c-bench-{uuid.uuid4().hex}"}))
    try:
        ends = {}
        for role in roles:  # a SPEC topic's role, or a full topic name
            topic = settings.topic(role) if role in TOPIC_ROLES else role
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                ends[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return ends
    finally:
        consumer.close()


def all_committed(client, group: str) -> int:
    """Sum of the group's committed offsets over every partition it committed (internal topics
    too: at the end of a large backlog the allocation loop may still be catching up while the
    inputs wait for it, which is progress)."""
    try:
        result = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=5)
        return sum(max(tp.offset, 0) for tp in result[group].result().topic_partitions if tp.error is None)
    except KafkaException:
        return 0


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


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM, Linux), MiB; 0 where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
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


def scrape(port: str | int, timeout: float = 10, missing_ok: bool = True) -> list:
    """The worker's Prometheus metric families (`GET /metrics`); [] if it does not answer and
    `missing_ok` (else the OSError: a figure read from a dead worker would be a wrong zero)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
            return list(text_string_to_metric_families(response.read().decode()))
    except OSError:
        if missing_ok:
            return []
        raise


def o2c_counters(port: str) -> dict[str, float]:
    """Totals of the worker's o2c_* Prometheus counters (summed over labels); {} if unreachable."""
    totals: dict[str, float] = {}
    for family in scrape(port):
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
    peers: Sequence[dict[str, str]] = (),
) -> Run:
    """Start a worker subprocess (then `started_hook(process)`), time it by its committed
    offsets of the `roles` topics, run `after(worker process, run)` (still timed:
    `run.after_s`), stop it (by PID). `peers`: the environments of more workers started with
    it in the same consumer group (their logs `<label>-2.log`, ...); `run.cpu` is then the CPU
    of all of them."""
    ends = end_offsets(settings, roles)
    total = sum(ends.values())
    group = env["O2C_APP_ID"]
    assert all(peer["O2C_APP_ID"] == group for peer in peers), "peers join the same group"
    client = admin(settings)
    log_path = workdir / f"{label}.log"
    log_paths = [log_path, *(workdir / f"{label}-{n}.log" for n in range(2, len(peers) + 2))]
    run = Run(label, total)
    with ExitStack() as stack:
        started = time.monotonic()
        procs: list[subprocess.Popen] = []
        for worker_env, path in zip([env, *peers], log_paths):
            procs.append(subprocess.Popen(
                argv, env=worker_env, cwd=REPO, stdout=stack.enter_context(open(path, "wb")),
                stderr=subprocess.STDOUT, preexec_fn=ends_with_parent,
            ))
            stack.callback(stop, procs[-1])  # by PID, before its log closes
        proc = procs[0]

        def cpu() -> float:
            return sum(cpu_seconds(p.pid) for p in procs)

        if started_hook is not None:
            started_hook(proc)
        last_change = started
        previous = previous_all = -1
        while True:
            for p, path in zip(procs, log_paths):
                if p.poll() is not None:
                    raise RuntimeError(f"{label} exited with {p.returncode}; see {path}")
            committed = committed_of(client, group, list(ends))
            now = time.monotonic()
            if committed != previous:
                last_change, previous = now, committed
            elif now - last_change > 60:
                progress = all_committed(client, group)
                if progress != previous_all:
                    last_change, previous_all = now, progress
            if committed > 0:
                if not run.samples:
                    run.ready_s = now - started
                    run.cpu.append(cpu())
                    if profiled:
                        proc.send_signal(PROFILE_START)
                run.samples.append((now, committed))
                if committed >= total:
                    run.cpu.append(cpu())
                    break
            if now - last_change > 180:
                raise RuntimeError(f"{label}: no committed progress on any topic for 180 s; see {log_path}")
            time.sleep(0.05)
        if after is not None:
            after(proc, run)
            run.after_s = time.monotonic() - run.samples[0][0]
        if profiled:
            proc.send_signal(PROFILE_STOP)
            wait_for_file(Path(f"{env['O2C_BENCH_PROFILE_OUT']}.txt"), proc)
        if counters:
            run.counters = o2c_counters(env["O2C_WEB_PORT"])
    for path in log_paths:
        errors = [
            line
            for line in path.read_text(errors="replace").splitlines()
            if "[ERROR]" in line or "[CRITICAL]" in line or "Traceback" in line
        ]
        if errors:
            print(f"  warning: {label} logged {len(errors)} error lines, first: {errors[0][:200]} ({path})")
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


def quiet(port: str, timeout: float = 300, also: Callable[[], bool] = lambda: True) -> None:
    """Until the worker's allocation messages sent == received (and `also()`), twice 0.5 s apart."""

    def calm() -> bool:
        sent, received = allocation_counts(port)
        return sent == received and also()

    until_twice(calm, timeout, 0.5)


def until_twice(check: Callable[[], bool], timeout: float = 300, interval: float = 0.5) -> None:
    """Until `check()` holds twice in a row, `interval` apart (the allocation loop is quiet)."""
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the allocation loop did not quiet down")
        time.sleep(interval)
        calm = calm + 1 if check() else 0


def clean_up(settings, workdir: Path) -> None:
    """A benchmark's workers' data dirs and its topics."""
    for sub in workdir.glob("data-*"):
        shutil.rmtree(sub, ignore_errors=True)
    delete_topics_of(settings)


def allocation_counts(port: str) -> tuple[float, float]:
    """The worker's allocation messages sent and received (the saga's loop; equal when quiet)."""
    sent = received = 0.0
    # 30 s: at the end of a 200k-order backlog a scrape took over 5 s (open: docs/runtime.md);
    # the benchmark measures the pipeline, and times the HTTP answers apart.
    for family in scrape(port, timeout=30, missing_ok=False):
        if family.name == "o2c_allocation_messages":
            for s in family.samples:
                if s.name.endswith("_total"):
                    if s.labels["stage"] == "sent":
                        sent += s.value
                    else:
                        received += s.value
    return sent, received


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
        # The benchmark's HTTP clients send no token; its workers listen on 127.0.0.1 only.
        "O2C_AUTH_ENABLED": "false",
        **extra,
    }


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
