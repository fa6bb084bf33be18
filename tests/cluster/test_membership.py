"""Membership changes are routine (SPEC §8-9), against the real broker, black box.

Three `o2c worker` processes share paced simulated traffic while the membership changes:
a worker stopped with SIGTERM, a worker added, a worker killed with SIGKILL and restarted on
its data dir, then a rolling restart of every worker one at a time (the StatefulSet pattern:
stop, start, wait for /ready, next). Meanwhile a background thread keeps asking every live
worker for a sample of orders and SKUs. Checked:

- no surviving worker crashes or stalls (every step ends with all workers ready and the
  cluster making progress; the lag reaches 0 at the end). A crash is recorded with the
  worker's log, then the worker is restarted on its data dir (as an orchestrator would) so
  that the remaining steps and checks still run and report;
- HTTP during the handovers: no 5xx, no timeout, no dropped connection; the only non-2xx/404
  answer allowed is 503 with a JSON body and a Retry-After header; an order or SKU that was
  answered once is never answered 404 again. The longest window in which a key was
  unanswerable on a worker is printed;
- every order's `seq` on `o2c.order-status` (read_committed) is 1..n with no repeat, and no
  input event causes two status changes; no `SlaBreached` repeats per (order, milestone);
- the ledger equals its committed `AtpChanged` and the orders' allocations;
- every worker answers the same final states, which are those of one uninterrupted worker
  processing the same stream, but for what depends on the interleaving of the input topics
  (compared as in tests/cluster/test_orders_cluster.py).

Every process (workers, simulators) is stopped by PID.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import requests

from tests.cluster.test_orders_cluster import anomalies, comparable_view, events_in, input_facts, last_status
from tests.conftest import O2C, REPO, Env, make_env
from tests.harness import Worker, WorkerFactory, read_topic
from tests.ledger_checks import app_lag, atp_views, ledger_vs_atp_topic, orders_vs_ledger

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# 6 partitions: 2 each with three workers, 3 each with two.
PARTITIONS = 6
# O2C_TEST_MEMBERSHIP_STANDBY=0 runs the workers without standby replicas (to measure the
# unanswerable windows both ways); by default they keep standbys, as the chart does.
STANDBY = os.environ.get("O2C_TEST_MEMBERSHIP_STANDBY", "1")
# A SIGKILLed member holds its partitions until its session times out: keep that short.
MEMBER_ENV = {"O2C_SESSION_TIMEOUT": "8", "O2C_HEARTBEAT_INTERVAL": "1", "O2C_STANDBY_REPLICAS": STANDBY}
# Traffic: successive `o2c simulate` chunks (one seed each, ~1,000 events) paced at RATE
# events/s until the membership changes are over; at most MAX_CHUNKS of them.
CHUNK_ORDERS = 100
RATE = 250
MAX_CHUNKS = 24
FIRST_SEED = 101
STEP_TIMEOUT = 60.0  # one membership step: every live worker ready again
DWELL = 2.0  # seconds of traffic on the settled cluster after each step
REQUEST_TIMEOUT = 10.0  # an HTTP probe not answered in this time is a stall
# 404 is an acceptable answer (the sampled orders of later chunks do not exist yet), but a 404
# for a key some worker already answered 200 is a wrong answer (state served before it is
# recovered, or lost): a failure of its own, beyond "no 5xx". False: only reported.
LOST_KEYS_FAIL = True
# Probed keys: orders of the first chunks (404 until placed) and popular SKUs.
SAMPLE_ORDERS = [f"SO-{FIRST_SEED}-{n:06d}" for n in (1, 17, 33, 50, 75, 99)] + [
    f"SO-{seed}-{n:06d}" for seed in (FIRST_SEED + 1, FIRST_SEED + 3, FIRST_SEED + 5) for n in (5, 60)
]
SAMPLE_SKUS = ["SKU-0001", "SKU-0002", "SKU-0007", "SKU-0025"]
PROBE_PATHS = [f"/orders/{o}" for o in SAMPLE_ORDERS] + [f"/atp/{s}" for s in SAMPLE_SKUS]


@pytest.fixture
def kafka_env(bootstrap_servers: str, tmp_path: Path) -> Env:
    """This module's isolated world: 6 partitions, so that every worker gets some."""
    return make_env(bootstrap_servers, tmp_path, PARTITIONS)


# --------------------------------------------------------------------------- traffic


class Traffic(threading.Thread):
    """Runs `o2c simulate --orders CHUNK_ORDERS --seed S --rate RATE` for S = FIRST_SEED,
    FIRST_SEED+1, ... until `finish()`; a chunk always runs to its end, so `seeds` names
    exactly the stream produced (the reference run replays it)."""

    def __init__(self, world: Env) -> None:
        super().__init__(name="traffic", daemon=True)
        self.world = world
        self.seeds: list[int] = []
        self.failures: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        seed = FIRST_SEED
        while not self.stopping.is_set() and len(self.seeds) < MAX_CHUNKS:
            args = ["simulate", "--orders", str(CHUNK_ORDERS), "--seed", str(seed), "--rate", str(RATE)]
            self.proc = subprocess.Popen(
                [*O2C, *args],
                env=self.world.env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            out, err = self.proc.communicate()
            if self.proc.returncode != 0:
                self.failures.append(f"o2c {' '.join(args)} exited {self.proc.returncode}: {err[-2000:]}")
                return
            self.seeds.append(seed)
            seed += 1

    def finish(self, timeout: float = 60) -> None:
        self.stopping.set()
        self.join(timeout)
        self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# --------------------------------------------------------------------------- HTTP probes


def acceptable_503(reply: requests.Response) -> bool:
    """A handover answer: 503, a JSON object body and a Retry-After header."""
    try:
        body = reply.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(reply.headers.get("Retry-After"))


class Prober(threading.Thread):
    """Keeps asking every live worker for PROBE_PATHS, counting the outcomes per phase.

    Outcomes: "200", "404", "503+retry-after" (acceptable), and the bad ones: "5xx:<code>",
    "503:bare" (no JSON body or no Retry-After), "other:<code>", "timeout", "dropped" (a
    connection error from a worker that already answered since it started: refused or reset),
    "lost" (404 for a key some worker answered 200 before). Connection errors before a
    (re)started worker answers once are "not-listening" (it is still starting)."""

    GOOD = {"200", "404", "503+retry-after", "not-listening"}

    def __init__(self, paths: list[str]) -> None:
        super().__init__(name="prober", daemon=True)
        self.paths = paths
        self.lock = threading.Lock()
        self.live: dict[str, tuple[Worker, int]] = {}  # name -> (worker, generation)
        self.generation = 0
        self.phase = "start"
        self.counts: Counter = Counter()  # (phase, worker, outcome)
        self.bad: dict[str, list[str]] = defaultdict(list)  # outcome -> a few examples
        self.seen_200: dict[str, str] = {}  # path -> worker and phase of its first 200
        self.outage: dict[tuple[str, str], float] = {}  # (worker, path) -> unanswerable since
        self.longest = (0.0, "", "", "")  # seconds, worker, path, phase
        self.last_answer: dict[str, float] = {}  # path -> last 200/404 from any worker
        self.longest_gap = (0.0, "", "")  # seconds, path, phase
        # per phase, for keys that exist (answered 200 once; a key not placed yet answers 404 from
        # its owner and 503 from a standby copy, which cannot prove absence): longest window
        # without a 200 for a key on a worker that had answered since its (re)start (a starting
        # worker is not ready: a load balancer would not ask it yet), and longest gap between two
        # 200s for a key from any worker
        self.window_by_phase: dict[str, float] = defaultdict(float)
        self.gap_by_phase: dict[str, float] = defaultdict(float)
        self.serving: set[tuple[str, int]] = set()  # (worker, generation) that answered 200/404
        self.stopping = threading.Event()
        self.rounds = 0

    def add(self, worker: Worker) -> None:
        with self.lock:
            self.generation += 1
            self.live[worker.name] = (worker, self.generation)

    def remove(self, worker: Worker) -> None:
        """Before a deliberate stop: its answers from now on are not counted."""
        with self.lock:
            self.live.pop(worker.name, None)
            for key in [k for k in self.outage if k[0] == worker.name]:
                del self.outage[key]

    def set_phase(self, phase: str) -> None:
        with self.lock:
            self.phase = phase

    def run(self) -> None:
        sessions: dict[tuple[str, int], requests.Session] = {}
        answered: set[tuple[str, int]] = set()
        while not self.stopping.is_set():
            with self.lock:
                members = list(self.live.items())
            for name, (worker, gen) in members:
                session = sessions.setdefault((name, gen), requests.Session())
                for path in self.paths:
                    if self.stopping.is_set():
                        break
                    started = time.monotonic()
                    outcome, detail = self._ask(session, worker, path, (name, gen) in answered)
                    if outcome in ("not-listening", "dropped") and worker.process.poll() is not None:
                        break  # it exited: the main thread reports a crash unless it was stopped
                    if outcome != "not-listening":
                        answered.add((name, gen))
                    with self.lock:
                        if self.live.get(name, (None, None))[1] != gen:
                            break  # stopped meanwhile on purpose: not counted
                        self._record(name, path, outcome, detail, started)
            self.rounds += 1
            time.sleep(0.2)
        for session in sessions.values():
            session.close()

    def _ask(self, session: requests.Session, worker: Worker, path: str, answered: bool) -> tuple[str, str]:
        for attempt in (1, 2):
            try:
                reply = session.get(f"{worker.url}{path}", timeout=REQUEST_TIMEOUT)
            except requests.Timeout:
                return "timeout", f"no answer in {REQUEST_TIMEOUT}s"
            except requests.ConnectionError as exc:
                if not answered:
                    return "not-listening", ""
                if attempt == 1:  # a pooled keep-alive connection the server closed: retry once
                    continue
                return "dropped", repr(exc)[:300]
            code = reply.status_code
            if code in (200, 404):
                return str(code), ""
            detail = f"{code} Retry-After={reply.headers.get('Retry-After')!r} body={reply.text[:300]!r}"
            if code == 503:
                return ("503+retry-after" if acceptable_503(reply) else "503:bare"), detail
            return (f"5xx:{code}" if code >= 500 else f"other:{code}"), detail
        raise AssertionError("unreachable")

    def _record(self, name: str, path: str, outcome: str, detail: str, started: float) -> None:
        now = time.monotonic()
        if outcome == "200":
            self.seen_200.setdefault(path, f"{name} in phase {self.phase!r}")
        elif outcome == "404" and path in self.seen_200:
            outcome, detail = "lost", f"404 for a key answered 200 before (first by {self.seen_200[path]})"
        self.counts[(self.phase, name, outcome)] += 1
        if outcome not in self.GOOD and len(self.bad[outcome]) < 3:
            self.bad[outcome].append(f"[{self.phase}] {name} GET {path}: {outcome} {detail}")
        key = (name, path)
        member = (name, self.live[name][1])
        if outcome in ("200", "404"):
            self.serving.add(member)
        if path not in self.seen_200:
            return  # unanswerable windows are measured for keys that exist (answered 200 once)
        if outcome == "200":
            since = self.outage.pop(key, None)
            if since is not None:
                if now - since > self.longest[0]:
                    self.longest = (now - since, name, path, self.phase)
                self.window_by_phase[self.phase] = max(self.window_by_phase[self.phase], now - since)
            if path in self.last_answer:
                gap = now - self.last_answer[path]
                if gap > self.longest_gap[0]:
                    self.longest_gap = (gap, path, self.phase)
                self.gap_by_phase[self.phase] = max(self.gap_by_phase[self.phase], gap)
            self.last_answer[path] = now
        elif outcome != "not-listening" and member in self.serving:
            self.outage.setdefault(key, started)

    def finish(self) -> None:
        self.stopping.set()
        self.join(REQUEST_TIMEOUT * 3)
        now = time.monotonic()
        with self.lock:
            for (name, path), since in self.outage.items():  # still unanswerable at the end
                if now - since > self.longest[0]:
                    self.longest = (now - since, name, path, self.phase + " (still open)")

    def bad_count(self, lost: bool = False) -> int:
        """Unacceptable answers: the "lost" ones (lost=True) or all the others."""
        return sum(
            n
            for (_, _, outcome), n in self.counts.items()
            if outcome not in self.GOOD and (outcome == "lost") == lost
        )

    def summary(self) -> str:
        by_phase: dict[str, Counter] = defaultdict(Counter)
        for (phase, _name, outcome), n in self.counts.items():
            by_phase[phase][outcome] += n
        lines = [f"HTTP probes ({self.rounds} rounds over {len(self.paths)} keys per live worker):"]
        for phase, counts in by_phase.items():
            lines.append(f"  {phase}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        secs, name, path, phase = self.longest
        lines.append(
            f"  longest window a key was unanswerable on a worker: {secs:.1f}s ({name} {path}, {phase})"
        )
        secs, path, phase = self.longest_gap
        lines.append(
            f"  longest gap between two answers for a key from any worker: {secs:.1f}s ({path}, {phase})"
        )
        lines.append(f"  per phase (standby replicas {STANDBY}): unanswerable window on a serving worker / gap "
                     "between answers from any worker")
        for phase in by_phase:
            lines.append(f"    {phase:24} {self.window_by_phase[phase]:5.1f}s / {self.gap_by_phase[phase]:5.1f}s")
        return "\n".join(lines)


# --------------------------------------------------------------------------- membership steps


class Abort(Exception):
    """A membership step cannot go on (a stall, a worker crashing again and again): the
    remaining steps are skipped, the checks of what was committed still run."""


def ready_status(worker: Worker) -> str:
    try:
        reply = worker.get("/ready", timeout=5)
    except requests.RequestException as exc:
        return type(exc).__name__
    return "ready" if reply.status_code == 200 else f"{reply.status_code} {reply.text[:120]}"


class Cluster:
    """The live workers. A worker that exits without being asked to is a failure: it is
    recorded with its log, then restarted on its data dir (as an orchestrator would), so that
    the remaining steps and checks still run."""

    MAX_CRASHES = 4

    def __init__(self, factory: WorkerFactory, prober: Prober, failures: list[str], mark) -> None:  # noqa: ANN001
        self.factory = factory
        self.prober = prober
        self.failures = failures
        self.mark = mark
        self.live: list[Worker] = []
        self.log_offset: dict[str, int] = {}
        self.crashes = 0

    def start(self, worker: Worker) -> Worker:
        self.log_offset[worker.name] = worker.log_path.stat().st_size if worker.log_path.exists() else 0
        worker.start()
        self.live.append(worker)
        self.prober.add(worker)
        return worker

    def log(self, worker: Worker) -> str:
        """The worker's log since its last start."""
        with open(worker.log_path, "rb") as f:
            f.seek(self.log_offset.get(worker.name, 0))
            return f.read().decode(errors="replace")

    def evidence(self, worker: Worker, lines: int = 25) -> str:
        """Its log since its last start: the fencing / critical / error lines (HTTP request
        errors counted apart), then the tail."""
        log = self.log(worker).splitlines()
        http = sum("Error handling request" in ln for ln in log)
        fenced = [ln for ln in log if "Fenced" in ln]
        errors = [
            ln for ln in log if ("[ERROR]" in ln or "[CRITICAL]" in ln) and "Error handling request" not in ln
        ]
        first = [ln[:300] for ln in dict.fromkeys(fenced[:3] + errors)][:6]
        return (
            f"  {worker.name} ({worker.log_path}): {http} 'Error handling request' lines; first fencing/error lines:\n    "
            + "\n    ".join(first)
            + "\n  log tail:\n    "
            + "\n    ".join(log[-lines:])
        )

    def stop(self, worker: Worker, phase: str) -> None:
        """SIGTERM: a clean shutdown exits 0."""
        self.check(phase)
        self.prober.remove(worker)
        self.live.remove(worker)
        worker.stop()
        self.mark(f"{worker.name} stopped (SIGTERM), exit code {worker.process.returncode}")
        if worker.process.returncode != 0:
            self.failures.append(
                f"[{phase}] {worker.name} exited {worker.process.returncode} on SIGTERM (not a clean shutdown)\n"
                + self.evidence(worker)
            )

    def kill(self, worker: Worker, phase: str) -> None:
        self.check(phase)
        self.prober.remove(worker)
        self.live.remove(worker)
        worker.kill()
        self.mark(f"{worker.name} killed (SIGKILL)")

    def check(self, phase: str) -> None:
        """Every live worker still running; the ones that exited are recorded and restarted."""
        for worker in list(self.live):
            if worker.process.poll() is None:
                continue
            self.crashes += 1
            self.mark(f"{worker.name} CRASHED (exit code {worker.process.returncode}) during {phase}")
            self.failures.append(
                f"[{phase}] surviving worker {worker.name} crashed, exit code {worker.process.returncode}\n"
                + self.evidence(worker)
            )
            self.prober.remove(worker)
            self.live.remove(worker)
            if self.crashes > self.MAX_CRASHES:
                raise Abort(f"[{phase}] {self.crashes} crashes: giving up the membership steps")
            self.start(worker)  # same data dir

    def wait_ready(self, phase: str, timeout: float = STEP_TIMEOUT) -> None:
        """Until every live worker answers /ready 200 twice in a row (0.5 s apart)."""
        deadline = time.monotonic() + timeout
        streak = 0
        states: dict[str, str] = {}
        while streak < 2:
            self.check(phase)
            if time.monotonic() > deadline:
                raise Abort(
                    f"[{phase}] stall: not every worker ready after {timeout:.0f}s: {states}\n"
                    + "\n".join(self.evidence(w, 15) for w in self.live)
                )
            states = {w.name: ready_status(w) for w in self.live}
            streak = streak + 1 if all(s == "ready" for s in states.values()) else 0
            time.sleep(0.5)

    def wait_progress(self, phase: str, timeout: float = 30) -> float:
        """Until the live workers together take in more input (the traffic keeps coming); the
        seconds it took."""
        started = time.monotonic()
        before = sum(events_in(w) for w in self.live)
        deadline = time.monotonic() + timeout
        while sum(events_in(w) for w in self.live) <= before:
            self.check(phase)
            if time.monotonic() > deadline:
                raise Abort(
                    f"[{phase}] stall: no input processed in {timeout:.0f}s\n"
                    + "\n".join(self.evidence(w, 15) for w in self.live)
                )
            time.sleep(0.5)
            before = min(before, sum(events_in(w) for w in self.live))  # a restart resets a counter
        return time.monotonic() - started

    def hold(self, phase: str, seconds: float = DWELL) -> None:
        """Let the settled cluster process traffic for a while, watching for crashes."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.check(phase)
            time.sleep(0.25)

    def wait_drained(self, world: Env, phase: str, timeout: float = 90) -> None:
        """Until every input record is processed and its offset committed (lag 0)."""
        deadline = time.monotonic() + timeout
        remaining = None
        while time.monotonic() < deadline:
            self.check(phase)
            remaining = app_lag(world.settings)
            if remaining == 0:
                return
            time.sleep(0.5)
        raise Abort(
            f"[{phase}] stall: lag still {remaining} after {timeout:.0f}s\n"
            + "\n".join(self.evidence(w, 15) for w in self.live)
        )


# --------------------------------------------------------------------------- topic checks


def seq_failures(statuses: list[dict]) -> list[str]:
    """Per order, in topic order: seq 1..n with no gap and no repeat; no input event causing two
    status changes."""
    by_order: dict[str, list[dict]] = defaultdict(list)
    for s in sorted(statuses, key=lambda s: (s["_partition"], s["_offset"])):
        by_order[s["order_id"]].append(s)
    bad = []
    for order_id, events in by_order.items():
        seqs = [e["seq"] for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            where = [(e["seq"], e["cause_event_type"], f"p{e['_partition']}@{e['_offset']}") for e in events]
            bad.append(f"{order_id}: seq {seqs} (seq, cause, partition@offset): {where}")
            continue
        causes = Counter(e["cause_event_id"] for e in events)
        twice = [c for c, n in causes.items() if n > 1]
        if twice:
            bad.append(f"{order_id}: events {twice} caused two status changes each")
    if not bad:
        return []
    return [
        f"seq: {len(bad)} of {len(by_order)} orders not 1..n without repeat, e.g.\n  " + "\n  ".join(bad[:5])
    ]


def breach_failures(breaches: list[dict]) -> list[str]:
    published = Counter((b["order_id"], b["milestone"]) for b in breaches)
    twice = {k: n for k, n in published.items() if n > 1}
    if not twice:
        return []
    examples = [
        (k, [f"p{b['_partition']}@{b['_offset']}" for b in breaches if (b["order_id"], b["milestone"]) == k])
        for k in list(twice)[:5]
    ]
    return [f"SlaBreached: {len(twice)} (order, milestone) published more than once, e.g. {examples}"]


def order_views(worker: Worker, order_ids: list[str]) -> tuple[dict[str, dict], list[str]]:
    views, failures = {}, []
    with requests.Session() as session:
        for order_id in order_ids:
            reply = session.get(f"{worker.url}/orders/{order_id}", timeout=30)
            if reply.status_code != 200:
                failures.append(
                    f"{worker.name} GET /orders/{order_id}: {reply.status_code} {reply.text[:200]}"
                )
                continue
            views[order_id] = reply.json()
    return views, failures


def diff_failures(got: dict[str, dict], want: dict[str, dict], what: str) -> list[str]:
    differ = sorted(k for k in want if got.get(k) != want[k])
    if not differ:
        return []
    k = differ[0]
    return [
        f"{what}: {len(differ)} orders differ, e.g. {k}:\n  got  {json.dumps(got.get(k))[:1500]}\n  want {json.dumps(want[k])[:1500]}"
    ]


def reference_views(
    bootstrap_servers: str, tmp: Path, seeds: list[int], order_ids: list[str]
) -> tuple[dict, list]:
    """The same stream (the same simulator chunks, in order) into another world, processed by
    one worker that is never interrupted: its views and its exceptions."""
    reference = make_env(bootstrap_servers, tmp, PARTITIONS)
    for seed in seeds:
        done = reference.o2c("simulate", "--orders", str(CHUNK_ORDERS), "--seed", str(seed))
        assert done.returncode == 0, done.stderr
    factory = WorkerFactory(reference.env, reference.tmp)
    try:
        ref = factory("ref", **MEMBER_ENV).start().wait_ready()
        deadline = time.monotonic() + 120
        while app_lag(reference.settings):
            assert ref.process.poll() is None and time.monotonic() < deadline, ref.log_tail()
            time.sleep(0.5)
        views, failures = order_views(ref, order_ids)
        assert not failures, failures[:5]
        assert ref.errors() == [], ref.log_tail()
        return views, read_topic(reference.settings, "exceptions", idle=1)
    finally:
        factory.stop_all()


def final_state_failures(
    world: Env, live: list[Worker], statuses: list[dict]
) -> tuple[list[str], dict[str, dict]]:
    """Every worker answers the same for every order (all of them from the first worker, a
    sample from the others), which is what the order's last committed status event says; the
    ledger is what the committed AtpChanged records and the orders' allocations say."""
    failures: list[str] = []
    placed = sorted(
        {
            e["order_id"]
            for e in read_topic(world.settings, "orders", idle=1)
            if e["event_type"] == "OrderPlaced"
        }
    )
    views, errs = order_views(live[0], placed)
    failures += errs[:5]
    sample = sorted(
        set(random.Random(7).sample(placed, min(150, len(placed)))) | (set(SAMPLE_ORDERS) & set(views))
    )
    for other in live[1:]:
        its, errs = order_views(other, sample)
        failures += errs[:5]
        failures += diff_failures(
            its,
            {k: views[k] for k in sample if k in views},
            f"GET /orders from {other.name} vs {live[0].name}",
        )
    last = last_status(statuses)
    stale = [
        (k, (v["seq"], v["status"]), (last[k]["seq"], last[k]["status"]) if k in last else None)
        for k, v in views.items()
        if k not in last or (v["seq"], v["status"]) != (last[k]["seq"], last[k]["status"])
    ]
    if stale:
        failures.append(
            f"{len(stale)} orders whose GET (seq, status) is not their last committed status event's, "
            f"e.g. (order, GET, topic): {stale[:5]}"
        )
    skus = {e["sku"] for e in read_topic(world.settings, "inventory", idle=1)}
    skus |= {ln["sku"] for v in views.values() for ln in v["lines"]}
    ledger = atp_views(live[0], skus)
    if differ := ledger_vs_atp_topic(world.settings, ledger):
        failures.append(
            f"ledger vs committed AtpChanged: {len(differ)} (sku, warehouse) differ, "
            f"e.g. ((sku, warehouse), (topic, GET /atp) as (on_hand, reserved, backordered, safety)): {sorted(differ.items())[:5]}"
        )
    if differ := orders_vs_ledger(views, ledger):
        failures.append(
            f"orders' allocations vs ledger: {len(differ)} SKUs differ, "
            f"e.g. (sku, (allocated, reserved, backordered in orders, in ledger)): {sorted(differ.items())[:5]}"
        )
    return failures, views


def reference_failures(
    world: Env, views: dict[str, dict], ref_views: dict[str, dict], ref_exceptions: list[dict]
) -> list[str]:
    """The final states against one uninterrupted worker's on the same stream: what comes
    straight from the input events for every order; the whole view but for what depends on the
    interleaving of the input topics, for orders that raised the same business exceptions."""
    failures = diff_failures(
        {k: input_facts(v) for k, v in views.items()},
        {k: input_facts(v) for k, v in ref_views.items()},
        "input facts of GET /orders vs the reference",
    )
    raised = anomalies(read_topic(world.settings, "exceptions", idle=1))
    ref_raised = anomalies(ref_exceptions)
    same_path = {k for k in views if raised.get(k, set()) == ref_raised.get(k, set())}
    other_path = sorted(set(views) - same_path)
    print(f"{len(other_path)} of {len(views)} orders raised other business exceptions than in the reference")
    if len(other_path) > len(views) // 20:
        failures.append(
            f"{len(other_path)} of {len(views)} orders raised other business exceptions than in the reference, "
            f"e.g. {[(k, raised.get(k), ref_raised.get(k)) for k in other_path[:3]]}"
        )
    failures += diff_failures(
        {k: comparable_view(v) for k, v in views.items() if k in same_path},
        {k: comparable_view(v) for k, v in ref_views.items() if k in same_path},
        "GET /orders vs the reference",
    )
    return failures


# --------------------------------------------------------------------------- the test


def test_membership_changes_are_routine(
    bootstrap_servers: str, kafka_env: Env, workers: WorkerFactory, tmp_path: Path
) -> None:
    world = kafka_env
    began = time.monotonic()
    timeline: list[str] = []
    failures: list[str] = []

    def mark(what: str) -> None:
        timeline.append(f"{time.monotonic() - began:6.1f}s {what}")

    prober = Prober(PROBE_PATHS)
    traffic = Traffic(world)
    cluster = Cluster(workers, prober, failures, mark)
    w1, w2, w3 = (cluster.start(workers(name, **MEMBER_ENV)) for name in ("w1", "w2", "w3"))
    drained = False
    try:
        cluster.wait_ready("start", timeout=90)
        mark("w1, w2, w3 ready")
        prober.set_phase("steady")
        prober.start()
        traffic.start()
        try:
            cluster.wait_progress("steady")
            time.sleep(3)

            phase = "SIGTERM w3"
            prober.set_phase(phase)
            cluster.stop(w3, phase)
            mark(f"survivors processing again {cluster.wait_progress(phase):.1f} s after w3 exited")
            cluster.wait_ready(phase)
            mark("w1, w2 ready")
            cluster.hold(phase)

            phase = "add w4"
            prober.set_phase(phase)
            cluster.start(workers("w4", **MEMBER_ENV))
            cluster.wait_ready(phase)
            cluster.wait_progress(phase)
            mark("w4 added, all ready")
            cluster.hold(phase)

            phase = "SIGKILL w2"
            prober.set_phase(phase)
            cluster.kill(w2, phase)
            # the survivors keep going with their own partitions; w2's move at its session timeout
            mark(f"survivors processing ({cluster.wait_progress(phase):.1f} s after the kill)")
            cluster.start(w2)  # same data dir
            cluster.wait_ready(phase)
            cluster.wait_progress(phase)
            mark("w2 restarted, all ready")
            cluster.hold(phase)

            for w in list(cluster.live):
                phase = f"rolling restart {w.name}"
                prober.set_phase(phase)
                cluster.stop(w, phase)
                cluster.start(w)
                cluster.wait_ready(phase)
                mark(f"{w.name} restarted, all ready")
                cluster.hold(phase)
            cluster.wait_progress("after rolling restart")
        except Abort as exc:
            failures.append(str(exc))
            mark("membership steps aborted: " + str(exc).splitlines()[0])
        prober.set_phase("drain")
        traffic.finish()
        mark(f"traffic done: {len(traffic.seeds)} chunks of {CHUNK_ORDERS} orders")
        try:
            cluster.wait_drained(world, "drain")
            drained = True
            mark("lag 0")
        except Abort as exc:
            failures.append(str(exc))
        prober.finish()
        failures += traffic.failures

        # --- HTTP during the handovers
        print(prober.summary())
        if prober.bad_count():
            failures.append(
                f"HTTP: {prober.bad_count()} unacceptable answers (5xx, 503 without JSON or Retry-After, "
                "other codes, timeouts, dropped connections) during the handovers\n"
                + prober.summary()
                + "\n  examples:\n  "
                + "\n  ".join(e for outcome, ex in prober.bad.items() if outcome != "lost" for e in ex)
            )
        if prober.bad_count(lost=True) and LOST_KEYS_FAIL:
            failures.append(
                f"HTTP: {prober.bad_count(lost=True)} answers 404 for a key already answered 200, e.g.\n  "
                + "\n  ".join(prober.bad["lost"])
            )

        # --- committed outputs
        statuses = read_topic(world.settings, "order-status", idle=2)
        breaches = read_topic(world.settings, "sla-breaches", idle=1)
        print(f"{len(statuses)} status events, {len(breaches)} SlaBreached")
        failures += seq_failures(statuses)
        failures += breach_failures(breaches)
        if not statuses or not breaches:
            failures.append(f"nothing to check: {len(statuses)} status events, {len(breaches)} SlaBreached")
        if not drained:
            failures.append("final states: not checked, the cluster did not finish the stream")
        else:
            found, views = final_state_failures(world, cluster.live, statuses)
            failures += found
            mark(f"checked the final states of {len(views)} orders")
            errors = {w.name: w.errors()[:3] for w in workers.workers if w.errors()}
            if errors:
                print(f"error lines in the worker logs: {errors}")

            # --- the reference: one uninterrupted worker on the same stream
            for w in cluster.live:
                w.stop()
            placed = sorted(views)
            ref_views, ref_exceptions = reference_views(
                bootstrap_servers, tmp_path / "reference", traffic.seeds, placed
            )
            mark("reference run done")
            failures += reference_failures(world, views, ref_views, ref_exceptions)
    finally:
        prober.stopping.set()
        traffic.kill()
        print("\n".join(timeline))
        print(f"traffic: {len(traffic.seeds)} chunks of {CHUNK_ORDERS} orders (seeds {traffic.seeds})")
    assert not failures, "\n\n".join(failures) + "\n\ntimeline:\n" + "\n".join(timeline)
