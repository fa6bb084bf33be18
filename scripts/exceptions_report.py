"""Business exceptions of one worker on a simulated backlog, against what the simulator meant.

    python -m scripts.exceptions_report [--orders 20000] [--seed 7] [--batch-size N] [--json FILE]
                                        [--worker-code DIR]

On the broker of O2C_BOOTSTRAP_SERVERS, with fresh topics (own topic prefix and app id, as
scripts/bench.py's benchmarks): produces the whole simulated stream of `o2c simulate --orders N
--seed S` (all four input topics) as a backlog, then starts one `o2c worker` with default
settings (except what scripts.bench.worker_env sets: its own app id, data dir, web port, and
the event SLA clock; `--batch-size` sets O2C_BATCH_SIZE). Waits until every input offset is
committed and the allocation loop is quiet (allocation messages sent == received, and no
committed record of the internal topics beyond the group's committed offsets), then reads the
exceptions topic (read_committed) and prints:

- the input events, the business exceptions by code (count, per 1,000 input events);
- how many match a simulator intent (streams/simulator/simulate.py `Intent`): same code and key (the
  exceptions topic's key: order_id, else sku), and also same cause event;
- the coded intents that raised no exception (code + key), with examples;
- a reference: the same stream applied in emission order through the pure models (tables/,
  in-process, allocation answered at once): what a worker reading every topic in production
  order would raise.

`--json FILE` also writes, for an exact comparison with another run: the exceptions
(code, key, cause event, detail), every order's status sequence from the status topic (order_id ->
[[seq, status], ...]) and the final position of every SKU at every warehouse, read over HTTP
from the worker (GET /atp/{sku}) before it is stopped.

`--worker-code DIR` runs the worker from another source tree (e.g. `git archive <commit> | tar
-x -C DIR`), for a before/after figure; the topics, the simulator and this script come from
this checkout.

The worker is stopped by its PID (SIGTERM, SIGKILL after 60 s); the run's topics are deleted
at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from scripts.bench_harness import (
    BENCH_DIR,
    REPO,
    counter_summary,
    delete_topics_of,
    isolated_settings,
    measure_worker,
    preproduce_all,
    quiet,
    worker_env,
)
from streams.contracts.roles import INPUT_ROLES
from streams.runtime.topics import admin, reader_config
from streams.simulator.simulate import Intent, SimulationConfig, generate

# --------------------------------------------------------------------------- the reference


def reference_exceptions(
    config: SimulationConfig, index: dict[str, tuple[str, str, int]] | None = None
) -> tuple[int, list[Intent], list[Any]]:
    """`(events, intents, exceptions)` of the simulated stream applied in emission order to the
    pure models (tables.order, tables.inventory), every allocation message answered at once:
    what one worker reading all topics in production order would raise. `index`, if given,
    receives event_id -> (topic role, event_type, occurred_at)."""
    from tables.inventory import SkuState, apply_inventory_event, apply_order_message
    from tables.order import OrderState, apply_allocation, apply_event

    intents: list[Intent] = []
    orders: dict[str, OrderState] = {}
    skus: dict[str, SkuState] = {}
    raised: list[Any] = []

    def order(order_id: str) -> OrderState:
        state = orders.get(order_id)
        if state is None:
            state = orders[order_id] = OrderState(order_id)
        return state

    def sku(name: str) -> SkuState:
        state = skus.get(name)
        if state is None:
            state = skus[name] = SkuState(name)
        return state

    def answered(out: Any) -> None:
        raised.extend(out.exceptions)
        for result in out.results:
            raised.extend(apply_allocation(order(result.order_id), result).exceptions)

    events = 0
    for sim in generate(config, intents=intents):
        events += 1
        event = sim.event
        if index is not None:
            index[event["event_id"]] = (sim.role, event["event_type"], event["occurred_at"])
        if sim.role == "inventory":
            answered(apply_inventory_event(sku(event["sku"]), event))
        else:
            out = apply_event(order(event["order_id"]), event, now=event["occurred_at"])
            raised.extend(out.exceptions)
            for message in out.allocation:
                answered(apply_order_message(sku(message.sku), message))
    return events, intents, raised


def exception_key(exc: dict[str, Any]) -> str:
    """The exceptions topic's key: order_id, else sku (SPEC §1)."""
    return exc.get("order_id") or exc.get("sku") or ""


# --------------------------------------------------------------------------- the worker side


def pending_internal(settings, group: str, topics: list[str]) -> int:
    """Partitions of `topics` holding a committed record beyond `group`'s committed offset (a
    read_committed reader from that offset reaches the end without a record: 0)."""
    client = Consumer(reader_config(settings, **{"enable.partition.eof": True}))
    try:
        partitions = []
        for topic in topics:
            meta = client.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            partitions += [TopicPartition(topic, p) for p in meta.partitions]
        if not partitions:
            return 0
        request = ConsumerGroupTopicPartitions(group, partitions)
        client_admin = admin(settings)  # held: a collected AdminClient never resolves its futures
        result = client_admin.list_consumer_group_offsets([request], request_timeout=10)[group].result(30)
        starts = [
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            for tp in result.topic_partitions
        ]
        client.assign(starts)
        open_ = {(tp.topic, tp.partition) for tp in starts}
        pending: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 30
        while open_ and time.monotonic() < deadline:
            msg = client.poll(0.5)
            if msg is None:
                continue
            tp = (msg.topic(), msg.partition())
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    open_.discard(tp)
                    continue
                raise KafkaException(msg.error())
            pending.add(tp)
            open_.discard(tp)
        return len(pending) + len(open_)
    finally:
        client.close()


def settle(port: str, settings, group: str, internal: list[str], timeout: float = 600) -> None:
    """Until, twice 0.5 s apart: allocation messages sent == received and nothing of the internal
    topics left beyond the group's committed offsets."""
    quiet(port, timeout, also=lambda: pending_internal(settings, group, internal) == 0)


def fetch_json(url: str, attempts: int = 20) -> Any:
    """GET `url` as JSON; retries a 503 (partition moving) and connection errors."""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code != 503 or attempt == attempts - 1:
                raise
        except OSError:
            if attempt == attempts - 1:
                raise
        time.sleep(0.5)
    return None


def final_atp(port: str, skus: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """sku -> warehouse -> on_hand, reserved, backordered, safety_stock, atp (GET /atp/{sku})."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for sku in skus:
        view = fetch_json(f"http://127.0.0.1:{port}/atp/{sku}")
        if view is None:
            continue
        out[sku] = {
            w["warehouse_id"]: {
                k: w[k] for k in ("on_hand", "reserved", "backordered", "safety_stock", "atp")
            }
            for w in view["warehouses"]
        }
    return out


def read_topic(settings, role: str, timeout: float = 120) -> list[tuple[str | None, dict[str, Any]]]:
    """Every committed record of an output topic: (key, flat record), up to the end of each
    partition (read_committed; the worker is stopped, so nothing is pending)."""
    from streams.contracts.codec import Codec
    from streams.contracts.flat import to_flat

    codec = Codec(settings)
    topic = settings.topic(role)
    consumer = Consumer(reader_config(settings, **{"enable.partition.eof": True}))
    out = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        open_ = set(meta.partitions)
        deadline = time.monotonic() + timeout
        while open_:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: no end of partition {sorted(open_)} within {timeout:g} s")
            for msg in consumer.consume(10_000, 0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        open_.discard(msg.partition())
                        continue
                    raise KafkaException(msg.error())
                key = msg.key()
                record = to_flat(role, codec.decode(role, msg.value()))
                out.append((key.decode() if key is not None else None, record))
    finally:
        consumer.close()
    return out


# --------------------------------------------------------------------------- the report


def command_line(args: argparse.Namespace) -> str:
    cmd = f"$ python -m scripts.exceptions_report --orders {args.orders} --seed {args.seed}"
    if args.batch_size is not None:
        cmd += f" --batch-size {args.batch_size}"
    if args.json:
        cmd += f" --json {args.json}"
    if args.worker_code:
        cmd += f" --worker-code {args.worker_code}"
    return cmd


def code_version(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    if done.returncode == 0 and done.stdout.strip():
        return f"{tree} ({done.stdout.strip()})"
    return str(tree)


def report(args: argparse.Namespace) -> int:
    started = time.monotonic()
    print(command_line(args))
    config = SimulationConfig(orders=args.orders, seed=args.seed)
    settings = isolated_settings()
    app_id = f"{settings.app_id}-report"
    worker_settings = settings.model_copy(update={"app_id": app_id})
    from streams.processors.saga import requests_topic, results_topic

    internal = [requests_topic(worker_settings), results_topic(worker_settings)]
    workdir = BENCH_DIR / settings.topic_prefix.rstrip(".")
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        counts = preproduce_all(settings, args.orders, seed=args.seed)
        total = sum(counts.values())
        extra = {}
        if args.batch_size is not None:
            extra["O2C_BATCH_SIZE"] = str(args.batch_size)
        argv = [sys.executable, "-m", "streams.cli", "worker"]
        if args.worker_code:
            extra["PYTHONPATH"] = str(Path(args.worker_code).resolve())
            argv = [sys.executable, "-P", "-m", "streams.cli", "worker"]  # -P: not this checkout's cwd
        env = worker_env(settings, app_id, workdir / "data", settings.processing_guarantee, **extra)
        port = env["O2C_WEB_PORT"]
        atp: dict[str, Any] = {}
        skus = [f"SKU-{i:04d}" for i in range(1, config.skus + 1)]

        def after(proc, run) -> None:
            settle(port, settings, app_id, internal)
            if args.json:
                atp.update(final_atp(port, skus))

        run = measure_worker(
            settings, "report-worker", argv, env, workdir, roles=INPUT_ROLES, counters=True, after=after
        )
        exceptions = read_topic(settings, "exceptions")
        statuses = read_topic(settings, "order-status") if args.json else []
    finally:
        shutil.rmtree(workdir / "data", ignore_errors=True)
        delete_topics_of(settings)

    index: dict[str, tuple[str, str, int]] = {}
    ref_events, intents, reference = reference_exceptions(config, index)
    assert ref_events == total, (ref_events, total)

    coded = [i for i in intents if i.code is not None]
    by_code_key = {(i.code, i.key) for i in coded}
    by_code_key_event = {(i.code, i.key, i.event_id) for i in coded}
    found = [(exc["code"], key or exception_key(exc), exc["cause_event_id"]) for key, exc in exceptions]
    details = {
        (exc["code"], key or exception_key(exc), exc["cause_event_id"]): exc for key, exc in exceptions
    }
    per_code = Counter(code for code, _, _ in found)
    matched = Counter(code for code, key, _ in found if (code, key) in by_code_key)
    matched_event = Counter(code for code, key, cause in found if (code, key, cause) in by_code_key_event)
    ref_found = Counter((exc.code, exc.order_id or exc.sku, exc.cause_event_id) for exc in reference)
    ref_codes = Counter(exc.code for exc in reference)
    ref_matched = Counter(exc.code for exc in reference if (exc.code, exc.order_id or exc.sku) in by_code_key)
    extra = Counter(found) - ref_found  # raised by the worker, not in emission order (same cause)
    extra_codes = Counter()
    for (code, _, _), k in extra.items():
        extra_codes[code] += k
    raised = {(code, key) for code, key, _ in found}
    missed = [i for i in coded if (i.code, i.key) not in raised]
    quiet = {i.event_id: i.kind for i in intents if i.code is None}
    on_quiet = Counter(quiet[cause] for _, _, cause in found if cause in quiet)

    n = len(found)
    per_k = 1000 / total if total else 0.0
    partitions = settings.partitions
    batch = args.batch_size if args.batch_size is not None else settings.batch_size
    worker_code = code_version(Path(args.worker_code).resolve() if args.worker_code else REPO)
    print(
        f"  input: {total:,} simulated events ({', '.join(f'{v:,} {k}' for k, v in counts.items())}) produced as a"
        f" backlog on {partitions} partitions; one o2c worker, defaults ({settings.processing_guarantee},"
        f" batch size {batch}, commit interval {settings.commit_interval:g} s, SLA clock event)"
    )
    print(f"  worker code: {worker_code}")
    print(
        f"  worker: every input offset committed {run.seconds:.1f} s after its first commit ({run.rate:,.0f}"
        f" events/s; startup {run.ready_s:.1f} s), allocation loop quiet after {run.after_s:.1f} s"
    )
    print(
        f"  business exceptions: {n:,} = {n * per_k:.2f} per 1,000 input events; matching a simulator intent"
        f" (code + key): {sum(matched.values()):,} ({_share(sum(matched.values()), n)}), with the same cause event:"
        f" {sum(matched_event.values()):,} ({_share(sum(matched_event.values()), n)})"
    )
    print(
        f"  {'code':<24} {'count':>7} {'per 1,000':>9} {'intended':>8} {'same event':>10}"
        f" {'emission order':>14} {'per 1,000':>9} {'not in emission order':>21}"
    )
    for code in sorted(set(per_code) | set(ref_codes), key=lambda c: (-per_code[c], -ref_codes[c], c)):
        print(
            f"  {code:<24} {per_code[code]:>7,} {per_code[code] * per_k:>9.2f} {matched[code]:>8,}"
            f" {matched_event[code]:>10,} {ref_codes[code]:>14,} {ref_codes[code] * per_k:>9.2f}"
            f" {extra_codes[code]:>21,}"
        )
    print(
        f"  {'total':<24} {n:>7,} {n * per_k:>9.2f} {sum(matched.values()):>8,} {sum(matched_event.values()):>10,}"
        f" {len(reference):>14,} {len(reference) * per_k:>9.2f} {sum(extra_codes.values()):>21,}"
    )
    print(
        "  (intended: code and key of a simulator intent; same event: also its cause event; emission order: the same"
        " stream through the pure models in production order, in-process, allocation answered at once,"
        f" {sum(ref_matched.values()):,} of them intended; not in emission order: same code, key and cause event"
        " not raised there)"
    )
    for code in sorted(extra_codes, key=lambda c: -extra_codes[c]):
        example = next(x for x in sorted(extra) if x[0] == code)
        role, event_type, at = index.get(example[2], ("?", "?", 0))
        print(
            f"    e.g. {code} {example[1]}: cause {example[2]} ({event_type} on {role}, occurred"
            f" {_iso(at)}): {details[example]['detail']}"
        )
    kinds = Counter(i.kind for i in coded)
    print(
        f"  simulator intents with a code: {len(coded):,} ("
        + ", ".join(f"{k} {v:,} -> {_code_of(coded, k)}" for k, v in sorted(kinds.items()))
        + f"); with no such exception (code + key): {len(missed):,}"
        + (
            f", e.g. {', '.join(f'{i.code} {i.key} ({i.kind}, {i.event_id})' for i in missed[:3])}"
            if missed
            else ""
        )
    )
    quiet_kinds = Counter(i.kind for i in intents if i.code is None)
    on_dup = on_quiet.pop("duplicate", 0)
    print(
        f"  deliberate irregularities the app must absorb silently: {sum(quiet_kinds.values()):,} ("
        + ", ".join(f"{k} {v:,}" for k, v in sorted(quiet_kinds.items()))
        + f"); exceptions caused by one of their events: {sum(on_quiet.values()):,}"
        + (f" ({', '.join(f'{k} {v:,}' for k, v in sorted(on_quiet.items()))})" if on_quiet else "")
        + f", plus {on_dup:,} caused by an event that was also duplicated (the copy is a no-op: the worker counted"
        f" {run.counters.get('o2c_duplicate_events', 0):,.0f} duplicates for {quiet_kinds['duplicate']:,} copies)"
    )
    if run.counters:
        print(f"  worker counters: {counter_summary(run.counters)}")
    if args.json:
        status: dict[str, list[list[Any]]] = defaultdict(list)
        for _key, record in statuses:
            status[record["order_id"]].append([record["seq"], record["status"]])
        for seqs in status.values():
            seqs.sort()
        doc = {
            "command": command_line(args)[2:],
            "orders": args.orders,
            "seed": args.seed,
            "batch_size": batch,
            "worker_code": worker_code,
            "input_events": total,
            "exceptions_by_code": dict(sorted(per_code.items())),
            "exceptions": sorted(
                [exc["code"], key or exception_key(exc), exc["cause_event_id"], exc["detail"]]
                for key, exc in exceptions
            ),
            "status": dict(sorted(status.items())),
            "atp": atp,
        }
        Path(args.json).write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(
            f"  wrote {args.json}: {len(found):,} exceptions, status sequences of {len(status):,} orders"
            f" ({len(statuses):,} status events), final ATP of {len(atp)} SKUs"
        )
    print(f"  worker logs: {workdir}; wall time {time.monotonic() - started:.0f} s")
    return 0


def _iso(millis: int) -> str:
    from streams.contracts.flat import iso_from_millis

    return iso_from_millis(millis) if millis else "?"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _code_of(intents: list[Intent], kind: str) -> str:
    return next(i.code for i in intents if i.kind == kind) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.exceptions_report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--batch-size", type=int, help="O2C_BATCH_SIZE of the worker (default: the settings')"
    )
    parser.add_argument("--json", help="write exceptions, status sequences and final ATP to this file")
    parser.add_argument("--worker-code", help="run the worker from this source tree instead of this checkout")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
