"""The order agent as a cluster against the real broker (SPEC §8-9).

- two workers share the partitions and answer every order, routing to the owner;
- SIGKILL while processing, twice, then restart: `seq` stays contiguous per order, nothing is
  published twice, the worker's state is what its committed outputs say, and the final state
  equals an uninterrupted run of the same stream but for what depends on the order in which the
  consumer happens to read the three input topics (exactly-once);
- a restart on its old data dir replays only the changelog tail, not the whole history.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.contracts.roles import ORDER_ROLES
from streams.runtime.topics import reader_config
from tests.conftest import Env, make_env
from tests.harness import Worker, WorkerFactory, read_topic
from tests.ledger_checks import app_lag, atp_views, lag_by_partition, ledger_vs_atp_topic, orders_vs_ledger

pytestmark = pytest.mark.kafka

PARTITIONS = 4
TABLES = ("orders", "inventory", "kpis", "cases")


def make_world(bootstrap_servers: str, tmp: Path, partitions: int = PARTITIONS) -> Env:
    """An isolated world like `kafka_env`'s, with 4 partitions so that two workers both get some."""
    return make_env(bootstrap_servers, tmp, partitions)


@pytest.fixture
def kafka_env(bootstrap_servers: str, tmp_path: Path) -> Env:
    """This module's isolated world: 4 partitions, so that two workers both get some."""
    return make_world(bootstrap_servers, tmp_path)


def simulate(world: Env, orders: int, seed: int) -> None:
    done = world.o2c("simulate", "--orders", str(orders), "--seed", str(seed))
    assert done.returncode == 0, done.stderr


def input_counts(world: Env, roles: tuple[str, ...] = ORDER_ROLES) -> dict[str, int]:
    """Records per input topic (high watermarks: the simulator is not transactional)."""
    settings = world.settings
    consumer = Consumer(reader_config(settings))
    try:
        return {
            role: sum(
                consumer.get_watermark_offsets(TopicPartition(settings.topic(role), p), timeout=10)[1]
                for p in range(settings.partitions)
            )
            for role in roles
        }
    finally:
        consumer.close()


def lag(world: Env) -> int:
    """Records of the app's source topics (inputs and the allocation loop) not yet covered by
    its committed offsets."""
    return app_lag(world.settings)


def input_lag(world: Env) -> int:
    """Records of the order topics (what `input_counts` counts; not the allocation loop's) not
    yet covered by the committed offsets: unlike `lag`, it only goes down (the app writes none)."""
    inputs = {world.settings.topic(role) for role in ORDER_ROLES}
    return sum(n for (topic, _), n in lag_by_partition(world.settings).items() if topic in inputs)


def wait_processed(world: Env, workers: list[Worker], timeout: float = 90) -> None:
    """Until every input record is processed and its offset committed (lag 0)."""
    deadline = time.monotonic() + timeout
    remaining = None
    while time.monotonic() < deadline:
        for w in workers:
            assert w.process is not None and w.process.poll() is None, f"{w.name} died:\n{w.log_tail()}"
        remaining = lag(world)
        if remaining == 0:
            return
        time.sleep(0.5)
    raise AssertionError(
        f"lag still {remaining} after {timeout}s:\n" + "\n".join(w.log_tail(30) for w in workers)
    )


def events_in(worker: Worker) -> float:
    """The worker's `o2c_events_in_total`, summed over roles and types (0 when unreachable)."""
    try:
        text = worker.get("/metrics", timeout=2).text
    except Exception:  # noqa: BLE001 - not up yet
        return 0.0
    return sum(float(v) for v in re.findall(r"^o2c_events_in_total\{[^}]*\} (\S+)$", text, re.M))


def placed_orders(world: Env) -> set[str]:
    orders = read_topic(world.settings, "orders", idle=1)
    return {e["order_id"] for e in orders if e["event_type"] == "OrderPlaced"}


def last_status(statuses: list[dict]) -> dict[str, dict]:
    """The last status event of every order (highest seq)."""
    last: dict[str, dict] = {}
    for s in statuses:
        if s["order_id"] not in last or s["seq"] > last[s["order_id"]]["seq"]:
            last[s["order_id"]] = s
    return last


# Which of the orders/shipments/payments topics the consumer reads first is up to its fetches,
# so two runs of one stream legitimately differ in the interleaving-dependent parts of an order
# (tests/unit/test_order_properties.py, P2): milestone timestamps, exceptions, seq. Worse, an event
# overtaking one of another topic that it logically follows (a dispatch read before the line
# increase it ships) raises an exception and changes the outcome for good; such orders are
# only compared on what comes straight from their input events. Allocation depends on when
# each request reaches the ledger relative to receipts and other orders' requests, so the
# allocation buckets (and the status they drive) are checked against the ledger instead
# (tests/ledger_checks.py), not against the other run.
def _lines(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in ln.items() if k not in ALLOCATION_FIELDS} for ln in lines]


def _milestones(m: dict) -> dict:
    return {"placed_at": m["placed_at"], "accepted_at": m["accepted_at"]}


ALLOCATION_FIELDS = {"allocated", "backordered", "warehouse_id", "promised_at", "pending_allocation"}
STATUS_VARIES = {"seq", "status", "previous_status", "exceptions", "cause_event_id", "cause_event_type"}
STATUS_VARIES |= {"occurred_at", "emitted_at", "correlation_id", "_offset", "_partition"}
# SLA breaches are detected on the wall clock (the simulated traffic is long overdue): their
# detection times differ between runs; they are checked for exactly-once on their own instead.
STATUS_VARIES |= {"open_breaches", "closed_breaches"}
VIEW_VARIES = {
    "seq",
    "status",
    "exceptions",
    "exceptions_total",
    "orphan_since",
    "open_breaches",
    "closed_breaches",
}
ORDER_INDEPENDENT_CODES = {"INVOICE_EXCEEDS_SHIPPED"}  # P2: the outcome is the same
# raised by the ledger or by its answers: they depend on the interleaving of orders and stock
ALLOCATION_CODES = {
    "NEGATIVE_ATP",
    "UNKNOWN_WAREHOUSE",
    "STALE_SNAPSHOT",
    "RELEASE_EXCEEDS_ALLOCATION",
    "UNKNOWN_ALLOCATION",
    "ALLOCATION_MISMATCH",
    "STALE_ALLOCATION",
    "UNEXPECTED_ALLOCATION",
}


def comparable_status(s: dict) -> dict:
    kept = {k: v for k, v in s.items() if k not in STATUS_VARIES}
    return kept | {"lines": _lines(s["lines"]), "milestones": _milestones(s["milestones"])}


def comparable_view(v: dict) -> dict:
    kept = {k: v for k, v in v.items() if k not in VIEW_VARIES}
    return kept | {"lines": _lines(v["lines"]), "milestones": _milestones(v["milestones"])}


def input_facts(v: dict) -> dict:
    """What an order's view takes straight from its input events, whatever their order."""
    header = ("customer_id", "channel", "region", "currency", "payment_terms_days", "promised_ship_at")
    return {
        "header": [v[k] for k in header] + list(_milestones(v["milestones"]).values()),
        "skus": {ln["line_id"]: ln["sku"] for ln in v["lines"]},
        "holds": sorted(h["hold_type"] for h in v["holds"]),
        "money": (v["invoiced_minor"], v["paid_minor"], v["refunded_minor"]),
        "shipments": sorted(
            (s["shipment_id"], s["carrier"], s["tracking_number"], s["dispatched_at"], s["delivered_at"])
            for s in v["shipments"]
        ),
        "invoices": sorted(
            (i["invoice_id"], i["total_minor"], str(i["lines"]), i["posted_at"], i["due_at"])
            for i in v["invoices"]
        ),
        "payments": sorted(
            (p["payment_id"], p["invoice_id"], p["amount_minor"], p["refunded_minor"]) for p in v["payments"]
        ),
    }


def anomalies(exceptions: list[dict]) -> dict[str, set[tuple[str, str]]]:
    """Per order, the order-dependent business exceptions raised (code, cause event)."""
    raised: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for e in exceptions:
        if e.get("order_id") and e["code"] not in ORDER_INDEPENDENT_CODES | ALLOCATION_CODES:
            raised[e["order_id"]].add((e["code"], e["cause_event_id"]))
    return raised


def assert_same(got: dict[str, dict], want: dict[str, dict], what: str) -> None:
    assert got.keys() == want.keys(), what
    diff = sorted(k for k in want if got[k] != want[k])
    assert not diff, f"{what}: {len(diff)} orders differ, e.g. {diff[0]}:\n{got[diff[0]]}\n{want[diff[0]]}"


def assert_exactly_once(statuses: list[dict], exceptions: list[dict]) -> None:
    """Per order, in topic order: seq 1, 2, 3... with no gap and no repeat, no event causing two
    status changes, and no business exception published twice."""
    seqs: dict[str, list[int]] = defaultdict(list)
    causes: dict[str, list[str]] = defaultdict(list)
    for s in sorted(statuses, key=lambda s: (s["_partition"], s["_offset"])):
        assert s["_key"] == s["order_id"]
        seqs[s["order_id"]].append(s["seq"])
        causes[s["order_id"]].append(s["cause_event_id"])
    bad = {k: v for k, v in seqs.items() if v != list(range(1, len(v) + 1))}
    assert not bad, f"{len(bad)} orders with gaps or repeats, e.g. {dict(list(bad.items())[:5])}"
    repeated = {k: v for k, v in causes.items() if len(set(v)) != len(v)}
    assert not repeated, f"events causing two status changes: {dict(list(repeated.items())[:5])}"
    raised = [(e["_key"], e["code"], e["cause_event_id"], e["detail"]) for e in exceptions]
    twice = [e for e, n in Counter(raised).items() if n > 1]
    assert not twice, f"{len(twice)} exceptions published twice, e.g. {twice[:3]}"


# --------------------------------------------------------------------------- tests


def test_two_workers_answer_every_order(kafka_env: Env, workers: WorkerFactory) -> None:
    w1 = workers("w1").start()
    w2 = workers("w2").start()
    w1.wait_ready()
    w2.wait_ready()
    simulate(kafka_env, 300, 3)
    wait_processed(kafka_env, [w1, w2])
    for w in (w1, w2):  # a rebalance may still be settling after the second join
        w.wait_ready(timeout=60)

    placed = placed_orders(kafka_env)
    assert len(placed) >= 290
    for order_id in sorted(placed):
        replies = [w.get(f"/orders/{order_id}") for w in (w1, w2)]
        assert [r.status_code for r in replies] == [200, 200], (order_id, [r.text for r in replies])
        a, b = (r.json() for r in replies)
        assert a == b
        assert a["order_id"] == order_id
    assert w1.get("/orders/SO-NOPE").status_code == 404
    assert w2.get("/orders/SO-NOPE").status_code == 404

    stats = [w.get("/stats").json() for w in (w1, w2)]
    assert stats[0] == stats[1]
    assert stats[0]["orders"] == len(placed)
    assert stats[0]["workers"] == 2 and "unreachable_workers" not in stats[0]
    assert sum(stats[0]["by_region"].values()) == len(placed)
    # each worker holds part of the orders, so half of the answers above were routed
    local = [sum(w.get("/stats/local").json()["by_status"].values()) for w in (w1, w2)]
    assert all(n > 0 for n in local) and sum(local) == len(placed), local

    ready = [w.get("/ready") for w in (w1, w2)]
    assert [r.status_code for r in ready] == [200, 200]
    assigned = [r.json()["assigned_partitions"] for r in ready]
    assert all(n > 0 for n in assigned)
    assert w1.errors() == [] and w2.errors() == []


# Faust reads these from the environment. A SIGKILLed member stays in the consumer group until
# its session times out (Faust's default: 60 s), and the restarted worker waits for that.
FAST_REJOIN = {"O2C_SESSION_TIMEOUT": "8", "O2C_HEARTBEAT_INTERVAL": "1"}
# Commits every 0.5 s during the backlog: a kill lands with up to 0.5 s of uncommitted work.
# O2C_TEST_CRASH_COMMIT_INTERVAL=0.2 kills around more commits: it showed a duplicate
# UNKNOWN_ALLOCATION exception in about one run in five to ten (open, see the 2026-12-05 note).
CRASHY = {**FAST_REJOIN, "O2C_COMMIT_INTERVAL": os.environ.get("O2C_TEST_CRASH_COMMIT_INTERVAL", "0.5")}
CRASH_ORDERS = 2000  # about 19,800 events, 18,700 of them on the order topics
CRASH_SEED = 11


def kill_when(
    worker: Worker, processed: float, world: Env, lag_below: int, lag_above: int, timeout: float = 60
) -> float:
    """SIGKILL `worker` once its `o2c_events_in_total` reached `processed` and the input lag
    (`input_lag`) is below `lag_below` (it committed something) but above `lag_above`; returns
    the events it had processed.

    The input lag, not the whole loop's: the allocation loop writes new records as it goes, so
    its lag can grow after a restart and stay above a bound the inputs have long passed. A
    margin, not just "above 0": a worker that runs out of input commits at once (not at its
    interval), so a small lag seen by the lookup can be committed away before the kill lands.
    `lag_above` must be more than the worker processes between the lookup and the kill."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        seen = events_in(worker)
        if seen >= processed and lag_above < input_lag(world) < lag_below:
            seen = events_in(worker)  # again: the lag lookup took a while, and the worker went on
            worker.kill()
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{worker.name} did not process {processed} events in {timeout}s")


def order_views(worker: Worker, order_ids: set[str]) -> dict[str, dict]:
    import requests

    with requests.Session() as session:
        views = {}
        for order_id in sorted(order_ids):
            reply = session.get(f"{worker.url}/orders/{order_id}", timeout=30)
            assert reply.status_code == 200, (order_id, reply.text)
            views[order_id] = reply.json()
        return views


def test_sigkill_while_processing_is_exactly_once(
    bootstrap_servers: str, tmp_path: Path, kafka_env: Env, workers: WorkerFactory
) -> None:
    # The reference: the same stream in another world, one worker never interrupted.
    reference = make_world(bootstrap_servers, tmp_path / "reference")
    reference_workers = WorkerFactory(reference.env, reference.tmp)
    try:
        simulate(reference, CRASH_ORDERS, CRASH_SEED)
        ref = reference_workers("ref").start()

        simulate(kafka_env, CRASH_ORDERS, CRASH_SEED)
        total = sum(input_counts(kafka_env).values())
        assert total == sum(input_counts(reference).values()) > 15_000

        worker = workers("crashy", **CRASHY).start()
        # The first kill after a commit, with at least a quarter of the input left. (Half missed
        # its window once in CI: at 0.5 s commits a commit moves the lag by about a fifth of the
        # input, so the half window held two commit states, and a slow lag lookup passed both.)
        first = kill_when(worker, 0.2 * total, kafka_env, total, total // 4)
        lag_at_kill = input_lag(kafka_env)
        assert 0 < lag_at_kill < total  # killed while processing, after some commits
        assert read_topic(kafka_env.settings, "order-status", idle=0.5) != []
        worker.start()  # same data dir
        # Killed again by its own progress, not a lag window: a quarter of what was left taken
        # in, so most of it is still unprocessed (however the commits fell).
        second = kill_when(worker, 0.25 * lag_at_kill, kafka_env, total + 1, 0)
        assert lag(kafka_env) > 0
        worker.start()
        wait_processed(kafka_env, [worker], timeout=120)
        # the kills lost uncommitted work, which was processed again
        assert first + second + events_in(worker) > total
        wait_processed(reference, [ref], timeout=120)

        statuses = read_topic(kafka_env.settings, "order-status", idle=2)
        ref_statuses = read_topic(reference.settings, "order-status", idle=2)
        exceptions = read_topic(kafka_env.settings, "exceptions", idle=1)
        ref_exceptions = read_topic(reference.settings, "exceptions", idle=1)
        assert_exactly_once(statuses, exceptions)
        assert_exactly_once(ref_statuses, ref_exceptions)
        breaches = [
            (b["order_id"], b["milestone"]) for b in read_topic(kafka_env.settings, "sla-breaches", idle=1)
        ]
        assert breaches and len(set(breaches)) == len(breaches), "an SLA breach published twice"
        assert read_topic(kafka_env.settings, "dlq", idle=0.5) == []

        # The worker's state is exactly what its committed outputs say...
        placed = placed_orders(kafka_env)
        last, ref_last = last_status(statuses), last_status(ref_statuses)
        assert last.keys() == placed
        views = order_views(worker, placed)
        for order_id, view in views.items():
            assert (view["seq"], view["status"]) == (last[order_id]["seq"], last[order_id]["status"])
        published: dict[str, set[str]] = defaultdict(set)
        for order_id, milestone in breaches:
            published[order_id].add(milestone)
        for order_id, status in last.items():  # every breach published is in the order's state
            recorded = {b["milestone"] for b in status["open_breaches"] + status["closed_breaches"]}
            assert recorded == published.get(order_id, set()), order_id
        # ...and the same as after an uninterrupted run, but for the interleaving-dependent parts.
        ref_views = order_views(ref, placed)
        assert_same(
            {k: input_facts(v) for k, v in views.items()},
            {k: input_facts(v) for k, v in ref_views.items()},
            "input facts of GET /orders",
        )
        raised, ref_raised = anomalies(exceptions), anomalies(ref_exceptions)
        same_path = {k for k in placed if raised.get(k, set()) == ref_raised.get(k, set())}
        assert len(placed) - len(same_path) <= len(placed) // 50, sorted(placed - same_path)
        assert_same(
            {k: comparable_status(v) for k, v in last.items() if k in same_path},
            {k: comparable_status(v) for k, v in ref_last.items() if k in same_path},
            "last OrderStatusChanged",
        )
        assert_same(
            {k: comparable_view(v) for k, v in views.items() if k in same_path},
            {k: comparable_view(v) for k, v in ref_views.items() if k in same_path},
            "GET /orders",
        )
        # The ledger (SPEC §9: ATP conserves): every order's allocation is what the ledger holds,
        # and the ledger is what the committed AtpChanged records say, in both runs.
        skus = {e["sku"] for e in read_topic(kafka_env.settings, "inventory", idle=1)}
        skus |= {ln["sku"] for v in views.values() for ln in v["lines"]}
        for world, w, its_views in ((kafka_env, worker, views), (reference, ref, ref_views)):
            ledger = atp_views(w, skus)
            assert orders_vs_ledger(its_views, ledger) == {}, w.name
            assert ledger_vs_atp_topic(world.settings, ledger) == {}, w.name
        assert all(s < 5 for s in recovery_seconds(worker.log_path.read_text(errors="replace")))
        assert worker.errors() == [] and ref.errors() == []
    finally:
        reference_workers.stop_all()


def recovery_tables(log: str) -> list[dict[tuple[str, int], tuple[int, int]]]:
    """Per worker start in `log`: {(changelog, partition): (offset after the last record
    recovery read, offset it started reading at)}, from the runtime's "recovery (active)" lines
    and its "recovery (standby)" lines (a starting worker follows its local partitions as
    standbys until its first assignment, so part of a tail may be read there first;
    streams/runtime/engine.py)."""
    starts = []
    for chunk in log.split("[^Worker]: Starting...")[1:]:
        found: dict[tuple[str, int], tuple[int, int]] = {}
        pattern = r"recovery \((?:active|standby)\): (\S+)\[(\d+)\] from (-?\d+) to (-?\d+)"
        for t, p, begin, end in re.findall(pattern, chunk):
            tp, begin, end = (t, int(p)), int(begin), int(end)
            if end <= begin:
                continue
            if tp in found:  # contiguous ranges of one partition: standby first, then restore
                end, begin = max(end, found[tp][0]), min(begin, found[tp][1])
            found[tp] = (end, begin)
        starts.append(found)
    return starts


def recovery_seconds(log: str) -> list[float]:
    """Per worker start in `log`: seconds from its partitions' assignment to their being ready
    (changelogs restored)."""

    def at(chunk: str, text: str) -> float:
        line = next(line for line in chunk.splitlines() if text in line)
        stamp = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
        return stamp.timestamp()

    return [
        at(chunk, "assignment ready in") - at(chunk, "partitions assigned:")
        for chunk in log.split("[^Worker]: Starting...")[1:]
        if "assignment ready in" in chunk
    ]


def replayed(recovery: dict[tuple[str, int], tuple[int, int]]) -> int:
    """Changelog offsets recovery reads to bring local RocksDB up to date."""
    return sum(max(high - start, 0) for high, start in recovery.values())


def changelog_end(world: Env) -> int:
    """Offsets in the tables' changelogs so far (records and transaction markers)."""
    settings = world.settings
    consumer = Consumer(reader_config(settings))
    try:
        return sum(
            consumer.get_watermark_offsets(
                TopicPartition(f"{settings.app_id}-{table}-changelog", p), timeout=10
            )[1]
            for table in TABLES
            for p in range(settings.partitions)
        )
    finally:
        consumer.close()


def test_restart_replays_only_the_changelog_tail(kafka_env: Env, workers: WorkerFactory) -> None:
    simulate(kafka_env, 400, 5)
    w1 = workers("w1").start().wait_ready()
    wait_processed(kafka_env, [w1])
    placed = placed_orders(kafka_env)
    before = order_views(w1, placed)
    stats = w1.get("/stats").json()
    assert stats["orders"] == len(placed)

    # A clean stop and restart on the same data dir: nothing changed, nothing is replayed.
    w1.stop()
    assert w1.process is not None and w1.process.returncode == 0, w1.log_tail()
    history = changelog_end(kafka_env)
    assert history >= len(placed)  # every order was logged at least once
    w1.start().wait_ready()
    fresh, restart = recovery_tables(w1.log_path.read_text(errors="replace"))
    assert replayed(fresh) == 0  # an empty changelog
    assert replayed(restart) == 0, restart
    assert order_views(w1, placed) == before
    assert w1.get("/stats").json() == stats
    w1.stop()

    # Meanwhile a worker with an empty data dir takes over (it replays the whole changelog) and
    # processes more orders.
    w2 = workers("w2").start().wait_ready()
    (takeover,) = recovery_tables(w2.log_path.read_text(errors="replace"))
    # all of it but the commit marker that ends each partition
    assert history - len(TABLES) * PARTITIONS <= replayed(takeover) <= history, takeover
    assert order_views(w2, placed) == before
    simulate(kafka_env, 100, 6)
    wait_processed(kafka_env, [w2])
    placed |= placed_orders(kafka_env)
    after = order_views(w2, placed)
    w2.stop()
    tail = changelog_end(kafka_env) - history

    # Back on its old data dir, w1 replays only what w2 added to the changelog.
    w1.start().wait_ready()
    back = recovery_tables(w1.log_path.read_text(errors="replace"))[-1]
    assert 0 < replayed(back) <= tail < history, (back, tail, history)
    assert order_views(w1, placed) == after
    # and no recovery waited for the transaction markers that end the changelog partitions
    # (faust-streaming #47: 10 s or more each)
    for w in (w1, w2):
        assert all(s < 5 for s in recovery_seconds(w.log_path.read_text(errors="replace"))), w.name
    assert w1.errors() == [] and w2.errors() == []


SLOW_SEEK = '''
"""Test-only: restoring an assigned partition's stores takes SLOW_SEEK_SECONDS more."""
import os
import runpy
import time

for _entry in os.environ["PYTHONPATH"].split(os.pathsep):  # the tests' guard, which this file shadows
    if _entry.endswith("guards"):
        runpy.run_path(os.path.join(_entry, "sitecustomize.py"))

from streams.runtime import engine  # noqa: E402

_restore = engine.restore


def _slow_restore(*args, **kwargs):
    time.sleep(float(os.environ["SLOW_SEEK_SECONDS"]))
    return _restore(*args, **kwargs)


engine.restore = _slow_restore
'''


def input_records(world: Env) -> int:
    """Records of every input topic the worker reads."""
    return sum(input_counts(world, (*ORDER_ROLES, "inventory")).values())


def test_records_fetched_while_seeking_are_processed_once(
    kafka_env: Env, workers: WorkerFactory, tmp_path: Path
) -> None:
    """Under Faust, the stream partitions were resumed before they were sought to their
    committed offsets, and records fetched in between were processed twice or skipped. The
    runtime restores and positions a partition inside the assignment callback, before any of
    its records is fetched; with that step slowed down, every record is still processed exactly
    once and every offset gets committed, the allocation loop's too."""
    # A first worker leaves committed offsets and a changelog to recover (so that the fetcher
    # is already running when the next worker seeks), then more records arrive.
    simulate(kafka_env, 300, 31)
    first = workers("first").start().wait_ready()
    wait_processed(kafka_env, [first])
    first.stop()
    processed = input_records(kafka_env)
    simulate(kafka_env, 300, 32)
    records = input_records(kafka_env) - processed
    assert records > 2000
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SLOW_SEEK)
    slow = workers(
        "slow", PYTHONPATH=f"{inject}{os.pathsep}{kafka_env.env['PYTHONPATH']}", SLOW_SEEK_SECONDS="5"
    ).start()
    wait_processed(kafka_env, [slow], timeout=120)
    assert events_in(slow) == records
    assert slow.errors() == []
