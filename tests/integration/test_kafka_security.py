"""The Kafka security settings against a real SASL/PLAIN listener of the test broker
(scripts/private_broker.sh adds it): the CLI, a worker (aiokafka through Faust, the changelog
probe, confluent-kafka producers and readers) all authenticate with the `O2C_KAFKA_*` settings,
and a wrong password fails with a clear error instead of hanging."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from streams.runtime.topics import create_topics
from streams.settings import load_settings
from tests.conftest import REPO, Env
from tests.harness import WorkerFactory, read_topic

pytestmark = pytest.mark.kafka

USER, PASSWORD = "o2c", "o2c-secret"  # scripts/kafka.sh defaults


@pytest.fixture
def sasl_env(bootstrap_servers: str, tmp_path: Path) -> Env:
    servers = os.environ.get("O2C_TEST_SASL_SERVERS")
    if not servers:
        if os.environ.get("O2C_REQUIRE_KAFKA") == "1":
            pytest.fail("O2C_TEST_SASL_SERVERS is not set: scripts/private_broker.sh starts the SASL listener")
        pytest.skip("no SASL listener: run through `make test`")
    prefix = f"s{uuid.uuid4().hex[:10]}."
    values = {
        "O2C_BOOTSTRAP_SERVERS": servers,
        "O2C_TOPIC_PREFIX": prefix,
        "O2C_APP_ID": f"o2c-sasl-{prefix[:-1]}",
        "O2C_DATA_DIR": str(tmp_path / "data"),
        "O2C_PARTITIONS": "2",
        "O2C_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "O2C_KAFKA_SASL_MECHANISM": "PLAIN",
        "O2C_KAFKA_SASL_USERNAME": USER,
        "O2C_KAFKA_SASL_PASSWORD": PASSWORD,
        "O2C_AUTH_ENABLED": "false",  # as tests/conftest.py make_env: the test asks without a token
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("O2C_")} | values
    env["PYTHONPATH"] = str(REPO)
    settings = load_settings(
        bootstrap_servers=servers, topic_prefix=prefix, app_id=values["O2C_APP_ID"], data_dir=tmp_path / "data",
        partitions=2, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username=USER,
        kafka_sasl_password=PASSWORD,
    )
    create_topics(settings)
    return Env(settings=settings, env=env, tmp=tmp_path)


def test_worker_and_cli_authenticate_with_sasl(sasl_env: Env) -> None:
    placed = {
        "event_id": "sasl-1", "event_type": "OrderPlaced", "occurred_at": "2026-11-02T09:00:00Z",
        "source": "erp", "order_id": "SO-SASL", "customer_id": "C-1", "channel": "ECOM", "region": "EU",
        "currency": "EUR", "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1, "unit_price_minor": 100}],
    }
    done = sasl_env.o2c("produce", "orders", "-", input=json.dumps(placed) + "\n")
    assert done.returncode == 0, done.stderr
    workers = WorkerFactory(sasl_env.env, sasl_env.tmp)
    try:
        worker = workers("w1").start().wait_ready()
        reply = worker.get("/orders/SO-SASL?wait_for=SUBMITTED&timeout=20")
        assert reply.status_code == 200 and reply.json()["seq"] == 1, reply.text
        statuses = read_topic(sasl_env.settings, "order-status", expect=1)  # a reader with SASL too
        assert [(s["order_id"], s["status"]) for s in statuses] == [("SO-SASL", "SUBMITTED")]
        log = worker.log_path.read_text(errors="replace")
        assert "recovery targets (active)" in log  # the changelog probe connected with SASL as well
        assert worker.errors() == []
    finally:
        workers.stop_all()


def test_wrong_password_is_a_clear_error(sasl_env: Env) -> None:
    env = dict(sasl_env.env, O2C_KAFKA_SASL_PASSWORD="wrong")
    done = Env(settings=sasl_env.settings, env=env, tmp=sasl_env.tmp).o2c(
        "consume", "orders", "--from-beginning", "--timeout", "5", timeout=60
    )
    assert done.returncode != 0
    assert "o2c:" in done.stderr and "Traceback" not in done.stderr, done.stderr
