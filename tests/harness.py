"""Integration-test harness: real `o2c worker` processes (stopped by PID) and topic readers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.contracts.codec import Codec
from streams.contracts.flat import to_flat
from streams.contracts.roles import INTERNAL_TOPICS
from streams.runtime.engine import FRONTIER
from streams.runtime.topics import client_config
from streams.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Worker:
    """One `o2c worker` subprocess with its own data dir and web port."""

    env: dict[str, str]
    name: str
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Worker:
        env = {**self.env, "O2C_WEB_PORT": str(self.port)}
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = 90) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"worker {self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                if requests.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker {self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=kwargs.pop("timeout", 30), **kwargs)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (clean shutdown), SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: the crash the exactly-once guarantee must survive."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def errors(self) -> list[str]:
        """Log lines at ERROR/CRITICAL level or with a traceback."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [
            line
            for line in text.splitlines()
            if "[ERROR]" in line or "[CRITICAL]" in line or "Traceback" in line
        ]


class WorkerFactory:
    """Creates workers for one test's isolated world and stops every one of them by PID."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env = env
        self.tmp = tmp
        self.workers: list[Worker] = []

    def __call__(self, name: str = "w1", **extra_env: str) -> Worker:
        data_dir = self.tmp / f"data-{name}"
        env = {**self.env, "O2C_DATA_DIR": str(data_dir), **extra_env}
        worker = Worker(env=env, name=name, log_path=self.tmp / f"{name}.log")
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


def epoch_times(body):
    """An HTTP answer with its ISO-8601 timestamps (streams/api/web.py `iso_times`) back in
    epoch ms, for tests that compare answers with topic records or computed times; checks the
    rendering on the way (UTC, milliseconds)."""
    if isinstance(body, dict):
        out = {}
        for k, v in body.items():
            if isinstance(v, str) and (k.endswith("_at") or k in ("since", "orphan_since", "as_of")):
                assert v.endswith("Z") and len(v) == 24, f"{k}: {v!r} is not ISO-8601 UTC with milliseconds"
                out[k] = int(datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000)
            else:
                out[k] = epoch_times(v)
        return out
    if isinstance(body, list):
        return [epoch_times(v) for v in body]
    return body


def counters(worker: Worker, *names: str) -> dict[str, dict[tuple, float]]:
    """Counter values from the worker's `/metrics`: name -> {sorted label values: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, dict[tuple, float]] = {name: {} for name in names}
    for family in text_string_to_metric_families(worker.get("/metrics").text):
        if family.name in found:
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    labels = tuple(v for _, v in sorted(sample.labels.items()))
                    found[family.name][labels] = sample.value
    return found


def taken_in(worker: Worker) -> float:
    """Input records the worker has taken in: decoded (`o2c_events_in`) or dead-lettered."""
    found = counters(worker, "o2c_events_in", "o2c_dead_letters")
    return sum(found["o2c_events_in"].values()) + sum(found["o2c_dead_letters"].values())


def allocation_in_flight(worker: Worker) -> float:
    """Allocation-saga messages sent but not yet received (0 when the loop is quiet)."""
    sent = received = 0.0
    found = counters(worker, "o2c_allocation_messages")["o2c_allocation_messages"]
    for (stage, _type), value in found.items():  # label values sorted by label name
        if stage == "sent":
            sent += value
        else:
            received += value
    return sent - received


def settle(worker: Worker, inputs: float, timeout: float = 30) -> None:
    """Until the worker has taken in `inputs` records and no allocation message is in flight
    (twice in a row, 0.2 s apart: a result can cause another request)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{worker.name} did not settle: taken in {taken_in(worker)} of {inputs}, "
                f"{allocation_in_flight(worker)} allocation messages in flight\n{worker.log_tail()}"
            )
        time.sleep(0.2)
        quiet = quiet + 1 if taken_in(worker) >= inputs and allocation_in_flight(worker) == 0 else 0


def read_topic(
    settings: Settings,
    role: str,
    *,
    expect: int | None = None,
    timeout: float = 30,
    idle: float = 3,
) -> list[dict]:
    """Every committed record of a topic, decoded to the flat form, with `_key/_partition/_offset`.

    Stops when `expect` records were read (then waits `idle` more seconds for extras), or after
    `idle` seconds without records when `expect` is None, or at `timeout`.
    """
    codec = Codec(settings)
    internal = role in INTERNAL_TOPICS  # the allocation saga's JSON records
    topic = settings.internal_topic(role) if internal else settings.topic(role)
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"test-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            },
        )
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[dict] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                enough = expect is None or len(records) >= expect
                if enough and time.monotonic() - last >= idle:
                    break
                continue
            if msg.error():
                raise AssertionError(str(msg.error()))
            last = time.monotonic()
            if internal and any(name == FRONTIER for name, _ in msg.headers() or []):
                continue  # a task's frontier marker (streams/runtime/engine.py), not a message
            if role == "dlq":
                record = {"_value": msg.value(), "_headers": dict(msg.headers() or [])}
            elif internal:
                record = json.loads(msg.value())
            else:
                record = to_flat(role, codec.decode(role, msg.value()))
            record |= {
                "_key": msg.key().decode() if msg.key() else None,
                "_partition": msg.partition(),
                "_offset": msg.offset(),
            }
            records.append(record)
    finally:
        consumer.close()
    return records


@pytest.fixture
def workers(kafka_env) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(kafka_env.env, kafka_env.tmp)
    try:
        yield factory
    finally:
        factory.stop_all()
