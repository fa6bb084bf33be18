"""Same input, same outcome (issue 13): one simulated backlog processed by one worker, by one
worker taking tiny batches, and by two workers gives the same status sequence for every order,
the same business exceptions (code and key) and the same final ATP.

The inventory agent advances behind the order agent in business time, and with `align_answers`
the order agent waits for the inventory side before an event of an order an answer may still
change (docs/runtime.md, "Event-time order"), so neither the batching nor which worker ran which
partition changes what the allocation saga answered when. SLA deadlines run on the event clock
here (on the wall clock a breach depends on when the check ran, which no alignment can make
repeatable), with the allocation milestone out of reach (see POLICY).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer

from scripts.exceptions_report import pending_internal
from streams.contracts.codec import Codec
from streams.contracts.flat import key_of, to_record
from streams.contracts.roles import INTERNAL_TOPICS
from streams.runtime.topics import producer_config
from streams.simulator.simulate import SimulationConfig, generate
from tests.conftest import make_env
from tests.harness import Worker, WorkerFactory, read_topic, taken_in

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ORDERS = 1_200
SEED = 23
PARTITIONS = 4
WORKER_SETTINGS = {"O2C_SLA_CLOCK": "event", "O2C_ALIGN_ANSWERS": "true"}
# The one rule left timing-dependent with aligned answers (docs/runtime.md): an event-clock SLA
# check, run when another order's event moves the stream time, can find an allocation missing
# whose answer is still on its way (seen in a two-worker run: a breach the other runs did not
# have, during the handover's pause). The allocation milestone is the only one the answers meet,
# so it is given ten years here; every other deadline is checked as usual.
POLICY = '[default]\nallocation = "3650d"\n'


def produce_backlog(settings) -> int:
    codec = Codec(settings)
    producer = Producer(producer_config(settings))
    count = 0
    for sim in generate(SimulationConfig(orders=ORDERS, seed=SEED)):
        value = codec.encode(sim.role, to_record(sim.role, sim.event))
        while True:
            try:
                producer.produce(settings.topic(sim.role), value=value, key=key_of(sim.role, sim.event).encode())
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
    assert producer.flush(60) == 0
    return count


def settle(settings, workers: list[Worker], inputs: int, timeout: float = 240) -> None:
    """Until the workers took in every input and nothing is left on the allocation saga's topics
    beyond the group's committed offsets, three checks in a row. (The in-flight counters of
    `o2c_allocation_messages` are per process: a message read again after a handover counts as
    received twice.)"""
    internal = [settings.internal_topic(name) for name in INTERNAL_TOPICS]
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        assert time.monotonic() < deadline, "\n".join(w.log_tail(30) for w in workers)
        time.sleep(0.5)
        taken = sum(taken_in(w) for w in workers)
        quiet = quiet + 1 if taken >= inputs and pending_internal(settings, settings.app_id, internal) == 0 else 0


def outcome(settings) -> dict:
    """What the run published: per order its status events (seq, status, cause), the business
    exceptions by (code, key), the last AtpChanged per SKU and warehouse."""
    statuses: dict[str, list[tuple]] = {}
    for event in sorted(read_topic(settings, "order-status", idle=2, timeout=120), key=lambda e: e["seq"]):
        statuses.setdefault(event["order_id"], []).append((event["seq"], event["status"], event["cause_event_id"]))
    exceptions = Counter(
        (e["code"], e.get("order_id") or e.get("sku")) for e in read_topic(settings, "exceptions", idle=1, timeout=60)
    )
    atp: dict[tuple, tuple] = {}
    for event in read_topic(settings, "atp", idle=1, timeout=60):  # per key in offset order
        atp[(event["sku"], event["warehouse_id"])] = tuple(
            event[f] for f in ("on_hand", "reserved", "backordered", "safety_stock", "atp", "network_atp")
        )
    return {"statuses": statuses, "exceptions": exceptions, "atp": atp}


STALLED = re.compile(r"waited [0-9.]+ s for")  # a task gave up waiting for an input (the stall limit)


def run(
    bootstrap: str, tmp: Path, name: str, worker_envs: list[dict[str, str]], align_answers: bool = True,
    join_late: bool = False,
) -> dict:
    """`join_late`: the workers after the first join once it has taken in a quarter of the
    backlog (a rebalance while its buffers are full and its fetching paused)."""
    env = make_env(bootstrap, tmp / name, partitions=PARTITIONS)
    factory = WorkerFactory(env.env, env.tmp)
    try:
        inputs = produce_backlog(env.settings)  # a backlog: all of it on the broker before any worker
        policy = env.tmp / "sla-policy.toml"
        policy.write_text(POLICY)
        settings = {**WORKER_SETTINGS, "O2C_SLA_POLICY_PATH": str(policy)}
        if not align_answers:
            settings["O2C_ALIGN_ANSWERS"] = "false"
        workers = [factory(f"{name}-{i}", **settings, **extra) for i, extra in enumerate(worker_envs)]
        first, others = (workers[:1], workers[1:]) if join_late else (workers, [])
        for worker in first:
            worker.start()
        for worker in first:
            worker.wait_ready()
        if others:
            deadline = time.monotonic() + 120
            while taken_in(first[0]) < inputs / 4:
                assert time.monotonic() < deadline, first[0].log_tail(30)
                time.sleep(0.2)
            for worker in others:
                worker.start().wait_ready()
        settle(env.settings, workers, inputs)
        result = outcome(env.settings)
        result["inputs"] = inputs
        for worker in workers:
            assert worker.errors() == [], worker.log_tail()
        result["stalls"] = [line for w in workers for line in w.log_path.read_text().splitlines() if STALLED.search(line)]
        return result
    finally:
        factory.stop_all()


def test_a_backlog_gives_one_outcome_however_it_is_batched_and_spread(bootstrap_servers, tmp_path):
    default = run(bootstrap_servers, tmp_path, "default", [{}])
    small = run(bootstrap_servers, tmp_path, "small", [{"O2C_BATCH_SIZE": "7"}])
    two = run(bootstrap_servers, tmp_path, "two", [{}, {}])

    assert default["inputs"] > 10_000 and len(default["statuses"]) >= ORDERS * 0.9
    assert sum(default["exceptions"].values()) > 0 and len(default["atp"]) > 50  # something to compare
    for other, label in ((small, "batch size 7"), (two, "two workers")):
        differing = [o for o in default["statuses"] if default["statuses"][o] != other["statuses"].get(o)]
        assert differing == [], f"{label}: {len(differing)} orders took another path, e.g. {differing[:3]}"
        assert other["exceptions"] == default["exceptions"], label
        assert other["atp"] == default["atp"], label


def test_by_default_a_backlog_raises_the_same_exceptions_and_atp_however_it_is_batched(bootstrap_servers, tmp_path):
    """Without waiting for the answers (the default), where an allocation answer lands among an
    order's later events depends on timing, so status sequences may differ; the rest may not:
    each task merges its inputs in business time and the inventory side waits for the order
    side, whatever librdkafka fetched first (a partition's records behind others' in its queue
    once made tasks skip it after 5 s: different exceptions per run, docs/runtime.md)."""
    default = run(bootstrap_servers, tmp_path, "default", [{}], align_answers=False)
    small = run(bootstrap_servers, tmp_path, "small", [{"O2C_BATCH_SIZE": "7"}], align_answers=False)

    assert default["inputs"] > 10_000 and sum(default["exceptions"].values()) > 0 and len(default["atp"]) > 50
    assert small["exceptions"] == default["exceptions"]
    assert small["atp"] == default["atp"]


def test_a_worker_joining_a_busy_one_mid_backlog_changes_neither_the_progress_nor_the_outcome(
    bootstrap_servers, tmp_path
):
    """A second worker joins while the first catches up with its buffers full (100 records per
    partition: fetching paused), so the rebalance takes paused partitions and gives some back.
    librdkafka keeps a pause across that; the runtime had forgotten its own, so the partitions it
    got back were never fetched again: both workers stalled for good (settle timed out). And a
    requests partition paused at its total while one sender's lane was empty waited for a
    frontier it could not fetch, then went on out of business-time order (other exceptions and
    ATP than with the default buffer). Now no task gives up waiting, and the outcome is one
    worker's with default settings."""
    alone = run(bootstrap_servers, tmp_path, "alone", [{}], align_answers=False)
    small = {"O2C_BUFFERED_RECORDS_PER_PARTITION": "100"}
    joined = run(bootstrap_servers, tmp_path, "joined", [small, small], align_answers=False, join_late=True)

    assert joined["stalls"] == []
    assert sum(alone["exceptions"].values()) > 0 and len(alone["atp"]) > 50
    assert joined["exceptions"] == alone["exceptions"]
    assert joined["atp"] == alone["atp"]
