"""CLI behaviour that needs no broker."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=60,
    )


def test_unreachable_broker_gives_one_clear_line():
    done = run("consume", "orders", "--timeout", "1", O2C_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "o2c: Kafka at 127.0.0.1:1 failed: Failed to get metadata: Local: Broker transport failure"
    )


def test_bad_settings_name_the_variable_and_exit_2():
    done = run("topics", "create", O2C_PARTITIONS="zero", O2C_SINKS="bogus")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "o2c: setting O2C_PARTITIONS: Input should be a valid integer, unable to parse string as an integer",
        "o2c: setting O2C_SINKS: Value error, unknown sink(s) bogus; known: webhook, postgres",
    ]


def test_usage_error_exits_2():
    done = run("produce")
    assert done.returncode == 2
    assert "the following arguments are required: topic" in done.stderr


def test_schemas_check_passes_on_the_repository():
    done = run("schemas", "check")
    assert done.returncode == 0, done.stderr
