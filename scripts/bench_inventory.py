"""The inventory side's benchmarks (issue 4), run through `python -m scripts.bench`.

`inventory`: simulated traffic of all four input topics, pre-produced; one `o2c worker` processes
it with the whole allocation loop (order agent -> requests -> inventory agent -> results ->
order agent), timed from its first commit until every input offset is committed, and until the
loop is quiet too (both figures: the loop runs on after the inputs are committed). Three runs
over the same input, medians reported, with the worker's CPU and peak RSS, and the inventory
path's records/s (ledger events + allocation requests, releases and issues it handled).
References in the same run: the naive one-table-write-per-event Faust agent and a Faust agent
that does nothing, over the same four topics (scripts/bench_baseline_app.py).

`inventory-agent`: the inventory agent alone (scripts/bench_inventory_app.py: the same
`InventoryAgent`, no order agent), over pre-produced simulated ledger events and the allocation
requests, releases and issues the order model emits for the same simulated orders (computed
offline with tables.order): its records/s from its first commit until everything is committed,
against the naive agent over the same two topics.

`allocation-latency`: a worker with stock for every SKU; orders placed first, then each
`OrderAccepted` produced on its own while a long poll (`GET /orders/{id}?wait_for=ALLOCATED`)
waits: latency = produce call -> the long poll's answer. The loop crosses two transactional
hops, so the commit interval bounds it; each interval given is measured in turn.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import statistics
import subprocess
import sys
import time

import aiohttp
from confluent_kafka import Producer

from scripts.bench_harness import (
    BENCH_DIR,
    REPO,
    Run,
    clean_up,
    delete_topics_of,
    isolated_settings,
    measure_worker,
    o2c_counters,
    peak_rss_mb,
    preproduce_all,
    quiet,
    raw_produce,
    scrape,
    stop,
    until_twice,
    worker_env,
)
from scripts.exceptions_report import pending_internal
from streams.contracts.codec import Codec
from streams.contracts.flat import key_of, to_record
from streams.contracts.roles import INPUT_ROLES, INTERNAL_TOPICS
from streams.runtime.topics import create_topics, producer_config
from streams.simulator.simulate import SimulationConfig, generate


def inventory_path_records(port: str) -> dict[str, float]:
    """Records the inventory agent handled: ledger events and order messages, by type."""
    found: dict[str, float] = {}
    for family in scrape(port, timeout=5, missing_ok=False):
        for s in family.samples:
            if not s.name.endswith("_total"):
                continue
            if family.name == "o2c_events_in" and s.labels["role"] == "inventory":
                found["ledger events"] = found.get("ledger events", 0) + s.value
            elif (
                family.name == "o2c_allocation_messages"
                and s.labels["stage"] == "received"
                and s.labels["type"] != "AllocationResult"
            ):
                found[s.labels["type"]] = s.value
            elif family.name == "o2c_allocation_messages" and s.labels["type"] == "AllocationResult" and (
                s.labels["stage"] == "sent"
            ):
                found["results sent"] = s.value
    return found


def bench_inventory(orders: int, runs: int = 3) -> None:
    """The whole pipeline `runs` times over the same input (a fresh consumer group and state
    each time), reported as medians, next to the naive and the no-op Faust agents (issue 14)."""
    settings = isolated_settings()
    workdir = BENCH_DIR / settings.topic_prefix.rstrip(".")
    workdir.mkdir(parents=True, exist_ok=True)
    counts = preproduce_all(settings, orders)
    total = sum(counts.values())

    def env(name: str, **extra: str) -> dict[str, str]:
        return worker_env(settings, f"{settings.app_id}-{name}", workdir / f"data-{name}", "exactly_once", **extra)

    baseline_argv = [sys.executable, "-m", "scripts.bench_baseline_app"]
    roles = ",".join(INPUT_ROLES)
    naive = measure_worker(
        settings, "naive-4-topics", baseline_argv, env("naive", O2C_BENCH_ROLES=roles), workdir, roles=INPUT_ROLES
    )
    noop = measure_worker(
        settings, "noop-4-topics", baseline_argv, env("noop", O2C_BENCH_ROLES=roles, O2C_BENCH_AGENT="noop"),
        workdir, roles=INPUT_ROLES,
    )
    full: list[Run] = []
    handled: dict[str, float] = {}
    rss: list[float] = []
    for run in range(1, runs + 1):
        worker_environment = env(f"o2c{run}")
        port = worker_environment["O2C_WEB_PORT"]

        def settle(proc: subprocess.Popen, _run: Run, port: str = port) -> None:
            quiet(port)
            handled.update(inventory_path_records(port))
            rss.append(peak_rss_mb(proc.pid))

        full.append(
            measure_worker(
                settings, f"o2c-worker-{run}", [sys.executable, "-m", "streams.cli", "worker"], worker_environment,
                workdir, roles=INPUT_ROLES, counters=True, after=settle,
            )
        )
    committed = [r.rate for r in full]
    quiet_rates = [total / r.after_s for r in full]
    median = statistics.median
    inventory_records = sum(v for k, v in handled.items() if k != "results sent")
    print(f"$ python -m scripts.bench inventory --orders {orders} --runs {runs}")
    print(
        f"  input: {total:,} simulated events ({', '.join(f'{n:,} {r}' for r, n in counts.items())}) on"
        f" {settings.partitions} partitions, exactly-once, commit interval {settings.commit_interval:g} s"
    )
    print(
        f"  baseline: naive Faust agent over the four topics, one table write per event: {naive.rate:,.0f} events/s"
        f" (worker CPU {naive.cpu_share:.0%} of a core); Faust agent that does nothing: {noop.rate:,.0f} events/s"
    )
    print(
        f"  o2c worker (orders + inventory + the allocation loop), median of {runs} runs:"
        f" {median(committed):,.0f} input events/s until every input offset was committed"
        f" ({', '.join(f'{r:,.0f}' for r in committed)}); {median(quiet_rates):,.0f} input events/s until the"
        f" allocation loop was quiet too ({', '.join(f'{r:,.0f}' for r in quiet_rates)});"
        f" worker CPU {median([r.cpu_share for r in full]):.0%} of a core, peak RSS {median(rss):,.0f} MiB"
    )
    last = full[-1]
    print(
        f"  inventory path (last run): {inventory_records:,.0f} records ("
        + ", ".join(f"{v:,.0f} {k}" for k, v in sorted(handled.items()))
        + f") in {last.after_s:.1f} s = {inventory_records / last.after_s:,.0f} records/s"
    )
    print(
        f"  ratios to the naive agent (input events/s): {median(committed) / naive.rate:.2f} until committed,"
        f" {median(quiet_rates) / naive.rate:.2f} until quiet; no-op agent / naive {noop.rate / naive.rate:.2f}"
    )
    c = last.counters
    print(
        "  outputs (last run): "
        + ", ".join(
            f"{c.get(n, 0):,.0f} {w}"
            for n, w in (
                ("o2c_status_changes", "status events"),
                ("o2c_atp_changes", "AtpChanged"),
                ("o2c_business_exceptions", "business exceptions"),
                ("o2c_dead_letters", "dead letters"),
            )
        )
    )
    print(f"  worker logs: {workdir}")
    clean_up(settings, workdir)


def saga_settled(settings, group: str) -> None:
    """Until nothing is left on the allocation saga's topics beyond the group's committed
    offsets, twice in a row. (Not the workers' sent/received counters: those are per process,
    and a message read again after a rebalance is counted received twice.)"""
    topics = [settings.internal_topic(name) for name in INTERNAL_TOPICS]
    until_twice(lambda: pending_internal(settings, group, topics) == 0, interval=0.25)


def bench_scale(orders: int, runs: int = 3, workers: int = 2) -> None:
    """One worker against `workers` workers in one consumer group on this machine, over the
    same whole-pipeline backlog, alternating (issue 14 point 3: the pipeline scales with
    processes, since one Python process uses one core). Each run starts with a fresh group
    and state; timed like `inventory`, from the first commit."""
    settings = isolated_settings()
    workdir = BENCH_DIR / settings.topic_prefix.rstrip(".")
    workdir.mkdir(parents=True, exist_ok=True)
    counts = preproduce_all(settings, orders)
    total = sum(counts.values())
    argv = [sys.executable, "-m", "streams.cli", "worker"]
    results: dict[int, list[tuple[Run, float]]] = {1: [], workers: []}
    for run in range(1, runs + 1):
        for n in (1, workers):
            group = f"{settings.app_id}-w{n}-{run}"
            envs = [
                worker_env(settings, group, workdir / f"data-{group}-{i}", "exactly_once")
                for i in range(n)
            ]
            measured = measure_worker(
                settings, group, argv, envs[0], workdir, roles=INPUT_ROLES,
                after=lambda _proc, _run, group=group: saga_settled(settings, group), peers=envs[1:],
            )
            results[n].append((measured, total / measured.after_s))
            print(
                f"  run {run}, {n} worker{'s' if n > 1 else ''}: {measured.rate:,.0f} input events/s until"
                f" committed, {total / measured.after_s:,.0f} until quiet; CPU {measured.cpu_share:.0%} of a core"
                f" (all workers), first commit {measured.ready_s:.1f} s after start"
            )
    median = statistics.median
    one, many = results[1], results[workers]
    print(f"$ python -m scripts.bench scale --orders {orders} --runs {runs} --workers {workers}")
    print(
        f"  input: {total:,} simulated events on {settings.partitions} partitions, exactly-once;"
        f" each run a fresh group, workers started together"
    )
    for n, rows in ((1, one), (workers, many)):
        print(
            f"  {n} worker{'s' if n > 1 else ''}, median of {runs}: {median(r.rate for r, _ in rows):,.0f} input"
            f" events/s until committed, {median(q for _, q in rows):,.0f} until quiet;"
            f" CPU {median(r.cpu_share for r, _ in rows):.0%} of a core"
        )
    print(
        f"  {workers} workers / 1 worker: {median(r.rate for r, _ in many) / median(r.rate for r, _ in one):.2f}"
        f" until committed, {median(q for _, q in many) / median(q for _, q in one):.2f} until quiet"
        f" (goal >= 1.6 for two)"
    )
    print(f"  worker logs: {workdir}")
    clean_up(settings, workdir)


def preproduce_inventory_path(settings, requests: str, orders: int, seed: int = 7) -> dict[str, int]:
    """Ledger events of the simulation, and the allocation messages its order events make the
    order model send (the order agent's output to the `requests` topic), produced raw."""
    from streams.contracts.flat import to_flat
    from streams.processors import saga
    from tables.order import OrderState, apply_event

    codec = Codec(settings)
    states: dict[str, OrderState] = {}
    records = []
    counts = {"ledger events": 0, "allocation messages": 0}
    for sim in generate(SimulationConfig(orders=orders, seed=seed)):
        record = to_record(sim.role, sim.event)
        if sim.role == "inventory":
            counts["ledger events"] += 1
            records.append((settings.topic("inventory"), sim.event["sku"].encode(), codec.encode("inventory", record)))
            continue
        flat = to_flat(sim.role, record)
        state = states.setdefault(flat["order_id"], OrderState(flat["order_id"]))
        for message in apply_event(state, flat, now=flat["occurred_at"]).allocation:
            counts["allocation messages"] += 1
            records.append((requests, message.sku.encode(), saga.encode(message)))
    raw_produce(settings, records)
    return counts


def bench_inventory_agent(orders: int) -> None:
    from streams.processors import saga

    settings = isolated_settings()
    workdir = BENCH_DIR / settings.topic_prefix.rstrip(".")
    workdir.mkdir(parents=True, exist_ok=True)
    # The requests topic is internal, named after the app id of the worker that reads it.
    agent_app_id = f"{settings.app_id}-o2c"
    agent_settings = settings.model_copy(update={"app_id": agent_app_id})
    create_topics(agent_settings)
    requests = saga.requests_topic(agent_settings)
    counts = preproduce_inventory_path(settings, requests, orders)
    roles = ("inventory", requests)

    def env(name: str, **extra: str) -> dict[str, str]:
        return worker_env(settings, f"{settings.app_id}-{name}", workdir / f"data-{name}", "exactly_once", **extra)

    naive = measure_worker(
        settings, "naive-inventory", [sys.executable, "-m", "scripts.bench_baseline_app"],
        env("naive", O2C_BENCH_ROLES=f"inventory,{requests}"), workdir, roles=roles,
    )
    agent = measure_worker(
        settings, "inventory-agent", [sys.executable, "-m", "scripts.bench_inventory_app"],
        env("o2c"), workdir, roles=roles,
    )
    total = sum(counts.values())
    print(f"$ python -m scripts.bench inventory-agent --orders {orders}")
    print(
        f"  input: {total:,} records ({', '.join(f'{n:,} {k}' for k, n in counts.items())}) of {orders:,} simulated"
        f" orders on {settings.partitions} partitions, exactly-once, commit interval {settings.commit_interval:g} s"
    )
    print(f"  baseline: naive Faust agent over the same two topics: {naive.rate:,.0f} records/s")
    print(
        f"  inventory agent (ledger, reservations, AtpChanged, results): {agent.rate:,.0f} records/s"
        f" ({agent.seconds:.1f} s; worker CPU {agent.cpu_share:.0%} of a core)"
    )
    print(f"  ratio inventory agent / baseline: {agent.rate / naive.rate:.2f}")
    clean_up(settings, workdir)


# --------------------------------------------------------------------------- latency

SKUS = 50


def _event(i: int, event_type: str, order_id: str, **fields) -> dict:
    return {
        "event_id": f"lat-{event_type}-{order_id}-{i}",
        "event_type": event_type,
        "occurred_at": "2026-11-02T09:00:00Z",
        "source": "bench",
        "order_id": order_id,
        **fields,
    }


def _produce_flat(settings, role: str, events: list[dict]) -> None:
    codec = Codec(settings)
    raw_produce(
        settings,
        [(settings.topic(role), key_of(role, e).encode(), codec.encode(role, to_record(role, e))) for e in events],
    )


async def _measure(settings, port: str, order_ids: list[str], spacing: float) -> list[float]:
    codec = Codec(settings)
    producer = Producer({**producer_config(settings), "linger.ms": 0})
    latencies: list[float] = []
    topic = settings.topic("orders")

    async def one(session: aiohttp.ClientSession, i: int, order_id: str) -> None:
        url = f"http://127.0.0.1:{port}/orders/{order_id}?wait_for=ALLOCATED&timeout=30"
        poll = asyncio.ensure_future(session.get(url))
        await asyncio.sleep(0.05)  # the long poll is waiting before the event leaves
        value = codec.encode("orders", to_record("orders", _event(i, "OrderAccepted", order_id)))
        started = time.perf_counter()
        producer.produce(topic, key=order_id.encode(), value=value)
        producer.poll(0)
        async with await poll as reply:
            if reply.status != 200:
                raise RuntimeError(f"{order_id}: {reply.status} {await reply.text()}")
        latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession() as session:
        tasks = []
        for i, order_id in enumerate(order_ids):
            tasks.append(asyncio.ensure_future(one(session, i, order_id)))
            await asyncio.sleep(spacing)
            producer.poll(0)
        await asyncio.gather(*tasks)
    producer.flush(10)
    return latencies


def bench_allocation_latency(orders: int, commit_intervals: list[float], rate: float = 50.0) -> None:
    results = []
    for interval in commit_intervals:
        settings = isolated_settings()
        workdir = BENCH_DIR / settings.topic_prefix.rstrip(".")
        workdir.mkdir(parents=True, exist_ok=True)
        skus = [f"SKU-L{n:03d}" for n in range(SKUS)]
        receipts = [
            {"event_id": f"lat-rcv-{sku}", "event_type": "InventoryReceived", "occurred_at": "2026-11-02T08:00:00Z",
             "source": "bench", "sku": sku, "warehouse_id": "DC1", "quantity": 10 * orders, "source_doc": "ASN"}
            for sku in skus
        ]
        _produce_flat(settings, "inventory", receipts)
        order_ids = [f"SO-L{n:05d}" for n in range(orders)]
        placed = [
            _event(0, "OrderPlaced", oid, customer_id="C-1", channel="ECOM", region="EU", currency="EUR",
                   lines=[{"line_id": "1", "sku": skus[n % SKUS], "quantity": 1, "unit_price_minor": 100,
                           "warehouse_id": "DC1"}])
            for n, oid in enumerate(order_ids)
        ]
        _produce_flat(settings, "orders", placed)
        env = worker_env(
            settings, f"{settings.app_id}-lat", workdir / "data", "exactly_once",
            O2C_COMMIT_INTERVAL=str(interval),
        )
        log_path = workdir / "worker.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"], env=env, cwd=REPO, stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_placed(env["O2C_WEB_PORT"], orders, proc)
                latencies = asyncio.run(_measure(settings, env["O2C_WEB_PORT"], order_ids, 1 / rate))
            finally:
                stop(proc)
        results.append((interval, sorted(latencies)))
        shutil.rmtree(workdir / "data", ignore_errors=True)
        delete_topics_of(settings)
    print(
        f"$ python -m scripts.bench allocation-latency --orders {orders} "
        + " ".join(f"--commit-interval {i:g}" for i in commit_intervals)
    )
    print(
        f"  {orders:,} orders placed first (stock for all), then one OrderAccepted every {1000 / rate:.0f} ms;"
        " latency = produce call -> GET /orders/{id}?wait_for=ALLOCATED answers (exactly-once, 2 transactional hops)"
    )
    for interval, lat in results:
        p99 = lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)]
        print(
            f"  commit interval {interval:g} s: median {statistics.median(lat) * 1000:,.0f} ms,"
            f" p99 {p99 * 1000:,.0f} ms, max {lat[-1] * 1000:,.0f} ms ({len(lat):,} orders)"
        )
    if len(results) > 1:
        base = statistics.median(results[0][1])
        for interval, lat in results[1:]:
            print(f"  median ratio commit {interval:g} s / {results[0][0]:g} s: {statistics.median(lat) / base:.2f}")


def _wait_placed(port: str, orders: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        counters = o2c_counters(port)
        if counters.get("o2c_events_in", 0) >= orders + SKUS:
            quiet(port)
            return
        time.sleep(0.5)
    raise RuntimeError("the worker did not take in the placed orders")

