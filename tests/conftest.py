"""Shared fixtures: the real broker, isolated topic prefixes, and the `o2c` CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
O2C = [sys.executable, "-m", "streams.cli"]


@pytest.fixture(scope="session")
def bootstrap_servers() -> str:
    """The broker `make test` started; without one, Kafka tests skip (or fail under make test)."""
    servers = os.environ.get("O2C_BOOTSTRAP_SERVERS")
    if not servers:
        if os.environ.get("O2C_REQUIRE_KAFKA") == "1":
            pytest.fail("O2C_BOOTSTRAP_SERVERS is not set but a broker is required")
        pytest.skip("no broker: run through `make test` or set O2C_BOOTSTRAP_SERVERS")
    wait_for_group_coordinator(servers)
    return servers


def wait_for_group_coordinator(servers: str, timeout: float = 60) -> None:
    """A fresh broker creates `__consumer_offsets` on the first group request; until then
    workers log GroupCoordinatorNotAvailable errors. Ask once, here, until it answers."""
    import time

    from confluent_kafka.admin import AdminClient

    client = AdminClient({"bootstrap.servers": servers})
    deadline = time.monotonic() + timeout
    while True:
        future = client.describe_consumer_groups(["o2c-test-warm-up"])["o2c-test-warm-up"]
        try:
            future.result(timeout=10)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@dataclass
class Env:
    """One test's isolated world: its own topic prefix, data dir and settings."""

    settings: Settings
    env: dict[str, str]
    tmp: Path

    def o2c(
        self, *args: str, input: str | None = None, timeout: float = 120, env_extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*O2C, *args],
            input=input,
            capture_output=True,
            text=True,
            env={**self.env, **(env_extra or {})},
            cwd=REPO,
            timeout=timeout,
        )


# What the tests' processes import: the project, and the guard against re-entrant client calls
# (tests/guards/sitecustomize.py).
WORKER_PYTHONPATH = f"{REPO}{os.pathsep}{REPO / 'tests' / 'guards'}"


def make_env(bootstrap_servers: str, tmp: Path, partitions: int = 2) -> Env:
    """An isolated world: unique topic prefix and app id, its own data dir; SPEC topics created."""
    from streams.runtime.topics import create_topics

    tmp.mkdir(parents=True, exist_ok=True)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    values = {
        "O2C_BOOTSTRAP_SERVERS": bootstrap_servers,
        "O2C_TOPIC_PREFIX": prefix,
        "O2C_DATA_DIR": str(tmp / "data"),
        "O2C_APP_ID": f"o2c-test-{prefix[:-1]}",
        "O2C_PARTITIONS": str(partitions),
        # Tests ask the HTTP API without a token; tests/integration/test_auth.py turns it on.
        "O2C_AUTH_ENABLED": "false",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("O2C_")} | values
    env["PYTHONPATH"] = WORKER_PYTHONPATH
    settings = load_settings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=prefix,
        data_dir=tmp / "data",
        app_id=values["O2C_APP_ID"],
        partitions=partitions,
    )
    create_topics(settings)
    return Env(settings=settings, env=env, tmp=tmp)


@pytest.fixture
def kafka_env(bootstrap_servers: str, tmp_path: Path) -> Env:
    return make_env(bootstrap_servers, tmp_path)

from tests.harness import workers  # noqa: E402,F401  (fixture re-exported for every test module)
