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
import os
import shutil
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

from scripts.bench_harness import (
    BENCH_DIR,
    counter_summary,
    delete_topics_of,
    isolated_settings,
    measure_worker,
    o2c,
    preproduce_orders,
    profiled_worker,
    rate_of,
    raw_produce,
    worker_env,
)
from streams.contracts.codec import Codec
from streams.contracts.flat import key_of, to_record
from streams.settings import load_settings
from streams.simulator.simulate import SimulationConfig, generate


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
    p = sub.add_parser("scale")
    p.add_argument("--orders", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=3, help="alternating runs of each (medians reported)")
    p.add_argument("--workers", type=int, default=2, help="workers of the group compared with one")
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
    p = sub.add_parser("state")
    p.add_argument("--orders", type=int, default=20_000, help="orders processed by the worker")
    p.add_argument("--hold", type=int, default=1_000_000, help="orders in the changelog for the restarts")
    p.add_argument("--runs", type=int, default=1, help="clean restarts and full restores, each (medians)")
    p.add_argument(
        "--broker-dir", type=Path, default=None,
        help="the broker's log dir, for changelog bytes on disk (default: $KAFKA_STATE_DIR/data)",
    )
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
    elif args.bench == "scale":
        from scripts.bench_inventory import bench_scale

        bench_scale(args.orders, args.runs, args.workers)
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
    elif args.bench == "state":
        from scripts.bench_state import bench_state

        broker_dir = args.broker_dir
        if broker_dir is None and os.environ.get("KAFKA_STATE_DIR"):
            broker_dir = Path(os.environ["KAFKA_STATE_DIR"]) / "data"
        bench_state(args.orders, args.hold, broker_dir, args.runs)
    elif args.bench == "sinks":
        from scripts.bench_sinks import bench_sinks

        bench_sinks(args.events, args.orders)
    elif args.bench == "profiled-worker":
        return profiled_worker()
    return 0


if __name__ == "__main__":
    sys.exit(main())
