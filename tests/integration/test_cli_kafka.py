"""The `o2c` CLI against the real broker: produce -> consume, bad input, topics, simulate."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Producer

from streams.contracts.flat import to_flat, to_record
from streams.contracts.roles import CHANGELOGS, INPUT_ROLES
from tests.examples import EXAMPLES

pytestmark = pytest.mark.kafka



def examples_for(role: str) -> list[dict]:
    from streams.contracts.schemas import load_contracts

    contracts = load_contracts()
    return [EXAMPLES[t] for t in contracts.event_types(role)]


def jsonl(events: list[dict]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def consume_all(env, topic: str, *extra: str) -> tuple[list[dict], object]:
    done = env.o2c("consume", topic, "--from-beginning", "--timeout", "4", *extra)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return records, done


@pytest.mark.parametrize("role", INPUT_ROLES)
def test_produce_then_consume_every_event_type(kafka_env, role):
    events = examples_for(role)
    topic = kafka_env.settings.topic(role)
    path = kafka_env.tmp / f"{role}.jsonl"
    path.write_text(jsonl(events))

    produced = kafka_env.o2c("produce", topic, str(path))
    assert produced.returncode == 0, produced.stderr
    assert f"produced {len(events)} events to {topic}" in produced.stdout

    records, done = consume_all(kafka_env, topic, "--meta")
    assert done.returncode == 0, done.stderr
    assert len(records) == len(events)
    key_field = "sku" if role == "inventory" else "order_id"
    for record in records:
        assert record["_key"] == record[key_field]
        assert record["_partition"] in (0, 1)
    expected = sorted(
        (to_flat(role, to_record(role, e), iso_timestamps=True) for e in events), key=lambda e: e["event_id"]
    )
    got = sorted(({k: v for k, v in r.items() if not k.startswith("_")} for r in records), key=lambda e: e["event_id"])
    assert got == expected


def test_produce_reads_stdin_and_max_limits_consume(kafka_env):
    events = examples_for("orders")
    produced = kafka_env.o2c("produce", "orders", "-", input=jsonl(events))
    assert produced.returncode == 0, produced.stderr
    records, done = consume_all(kafka_env, kafka_env.settings.topic("orders"), "--max", "2", "--epoch-millis")
    assert done.returncode == 0
    assert len(records) == 2
    assert all(isinstance(r["occurred_at"], int) for r in records)


def test_consumed_json_lines_can_be_produced_again(kafka_env):
    """ISO timestamps printed by consume are accepted by produce: a topic can be copied."""
    events = examples_for("payments")
    assert kafka_env.o2c("produce", "payments", "-", input=jsonl(events)).returncode == 0
    records, _ = consume_all(kafka_env, kafka_env.settings.topic("payments"))
    assert all(r["occurred_at"].endswith("Z") for r in records)
    again = kafka_env.o2c("produce", "payments", "-", input=jsonl(records))
    assert again.returncode == 0, again.stderr
    assert f"produced {len(events)} events" in again.stdout


BAD_INPUTS = [
    ("invalid JSON", lambda ok: jsonl([ok]) + "{not json\n", "line 2: invalid JSON"),
    ("unknown event_type", lambda ok: jsonl([ok, {**ok, "event_type": "OrderTeleported"}]), "line 2: "),
    ("missing field", lambda ok: jsonl([{k: v for k, v in ok.items() if k != "customer_id"}]), "line 1: "),
    ("wrong type", lambda ok: jsonl([ok, ok, {**ok, "payment_terms_days": "thirty"}]), "line 3: "),
    (
        "wrong nested type",
        lambda ok: jsonl([{**ok, "lines": [{**ok["lines"][0], "quantity": "many"}]}]),
        "line 1: lines[0].quantity",
    ),
]


@pytest.mark.parametrize("name,make,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_rejected_whole(kafka_env, name, make, message):
    ok = EXAMPLES["OrderPlaced"]
    topic = kafka_env.settings.topic("orders")
    done = kafka_env.o2c("produce", topic, "-", input=make(ok))
    assert done.returncode == 1
    assert done.stderr.startswith("o2c: " + message), done.stderr
    records, _ = consume_all(kafka_env, topic)
    assert records == [], "nothing may be produced when any line is invalid"


def test_bad_input_messages_name_field_and_expectation(kafka_env):
    ok = EXAMPLES["OrderPlaced"]
    done = kafka_env.o2c("produce", "orders", "-", input=jsonl([{**ok, "event_type": "OrderTeleported"}]))
    assert "OrderTeleported" in done.stderr
    done = kafka_env.o2c("produce", "orders", "-", input=jsonl([{k: v for k, v in ok.items() if k != "customer_id"}]))
    assert "customer_id" in done.stderr
    done = kafka_env.o2c("produce", "orders", "-", input=jsonl([{**ok, "payment_terms_days": "thirty"}]))
    assert "payment_terms_days" in done.stderr and "int" in done.stderr


def test_unknown_topic(kafka_env):
    done = kafka_env.o2c("produce", "o2c.refunds", "-", input=jsonl([EXAMPLES["OrderPlaced"]]))
    assert done.returncode == 1
    assert "unknown topic 'o2c.refunds'" in done.stderr
    done = kafka_env.o2c("consume", "nope", "--timeout", "1")
    assert done.returncode == 1
    assert "unknown topic 'nope'" in done.stderr


def test_undecodable_bytes_on_consume_are_reported_and_skipped(kafka_env):
    topic = kafka_env.settings.topic("orders")
    producer = Producer({"bootstrap.servers": kafka_env.settings.bootstrap_servers})
    producer.produce(topic, key=b"SO-X", value=b"\x00garbage", partition=0)
    producer.produce(topic, key=b"SO-Y", value=b"\xc3\x01" + b"\x00" * 8 + b"zz", partition=0)
    producer.flush(10)
    good = kafka_env.o2c("produce", topic, "-", input=jsonl([EXAMPLES["OrderAccepted"]]))
    assert good.returncode == 0, good.stderr

    records, done = consume_all(kafka_env, topic)
    assert done.returncode == 1
    assert [r["event_type"] for r in records] == ["OrderAccepted"]
    lines = [line for line in done.stderr.splitlines() if "undecodable record:" in line]
    assert len(lines) == 2
    assert f"{topic} partition 0 offset 0: undecodable record" in lines[0]
    assert f"{topic} partition 0 offset 1: undecodable record" in lines[1]
    assert f"o2c: 2 undecodable records on {topic}" in done.stderr


def test_topics_create_is_idempotent(kafka_env):
    done = kafka_env.o2c("topics", "create")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("\t") for line in done.stdout.splitlines())
    spec = {kafka_env.settings.topic(r) for r in (*INPUT_ROLES, "order-status", "atp", "sla-breaches", "exceptions", "dlq")}
    spec |= {kafka_env.settings.topic(r) for r in ("case-actions", "cases")}  # the exception work queue's
    internal = {kafka_env.settings.internal_topic(n) for n in ("allocation-requests", "allocation-results", "case-events")}
    internal |= {kafka_env.settings.internal_topic(n) for n in CHANGELOGS}  # the stores' compacted changelogs
    assert set(lines) == spec | internal
    assert set(lines.values()) == {"exists"}


def test_simulate_fills_the_four_input_topics(kafka_env):
    done = kafka_env.o2c("simulate", "--orders", "30", "--seed", "7")
    assert done.returncode == 0, done.stderr
    total = int(done.stdout.strip().splitlines()[-1].split()[1])
    seen = 0
    for role in INPUT_ROLES:
        records, consumed = consume_all(kafka_env, kafka_env.settings.topic(role))
        assert consumed.returncode == 0, consumed.stderr
        assert records, f"no simulated events on {role}"
        seen += len(records)
    assert seen == total


def test_dlq_replay_republishes_chosen_dead_letters(kafka_env):
    settings = kafka_env.settings
    source = settings.topic("orders")
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for offset, (key, error_class) in enumerate([(b"SO-1", "DecodeError"), (b"SO-2", "KeyMismatch")]):
        producer.produce(
            settings.topic("dlq"),
            key=key,
            value=b"payload-" + key,
            partition=0,
            headers=[
                ("trace", b"t-1"),
                ("o2c.error_class", error_class.encode()),
                ("o2c.error_message", b"bad"),
                ("o2c.source_topic", source.encode()),
                ("o2c.source_partition", b"0"),
                ("o2c.source_offset", str(offset).encode()),
            ],
        )
    producer.flush(10)

    dry = kafka_env.o2c("dlq", "replay", "--error-class", "DecodeError", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [f"would replay dlq partition 0 offset 0 -> {source}", "would replay 1 dead letters"]

    done = kafka_env.o2c("dlq", "replay", "--offset", "0:1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "replayed 1 dead letters"

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "t", "enable.auto.commit": False})
    consumer.assign([TopicPartition(source, p, OFFSET_BEGINNING) for p in (0, 1)])
    got = []
    for _ in range(50):
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            got.append((msg.key(), msg.value(), msg.headers()))
        if got and msg is None:
            break
    consumer.close()
    assert got == [(b"SO-2", b"payload-SO-2", [("trace", b"t-1")])]

    bad = kafka_env.o2c("dlq", "replay", "--offset", "zero")
    assert bad.returncode == 1 and "--offset takes PARTITION:OFFSET" in bad.stderr


def test_dlq_replay_reads_dead_letters_a_worker_wrote_in_a_transaction(kafka_env):
    """A transactional topic ends with a commit marker: the reader must still see its end."""
    settings = kafka_env.settings
    producer = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "transactional.id": f"t-{settings.topic_prefix}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(
        settings.topic("dlq"), key=b"SO-9", value=b"bad", partition=0,
        headers=[("o2c.error_class", b"DecodeError"), ("o2c.source_topic", settings.topic("orders").encode()),
                 ("o2c.source_partition", b"0"), ("o2c.source_offset", b"7")],
    )
    producer.commit_transaction(30)

    dry = kafka_env.o2c("dlq", "replay", "--dry-run", timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == "would replay 1 dead letters"
