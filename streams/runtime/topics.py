"""Topic names of SPEC §1 and their creation on the broker."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.contracts.roles import CHANGELOGS, INTERNAL_TOPICS, TOPIC_ROLES
from streams.settings import Settings


class UnknownTopic(ValueError):
    pass


def role_of(settings: Settings, topic: str) -> str:
    """Accept a full topic name (`o2c.orders`) or a bare role (`orders`); return the role."""
    if topic.startswith(settings.topic_prefix) and topic[len(settings.topic_prefix) :] in TOPIC_ROLES:
        return topic[len(settings.topic_prefix) :]
    if topic in TOPIC_ROLES:
        return topic
    known = ", ".join(settings.topic(r) for r in TOPIC_ROLES)
    raise UnknownTopic(f"unknown topic {topic!r}; known topics: {known}")


def client_config(settings: Settings, **extra: object) -> dict[str, object]:
    """Common confluent-kafka config: the brokers and their security settings; librdkafka's own
    log lines go to the `librdkafka` logger (quiet unless debugging) instead of flooding stderr
    while a broker is unreachable."""
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "logger": logging.getLogger("librdkafka"),
        **security_config(settings),
        **extra,
    }


def security_config(settings: Settings) -> dict[str, object]:
    """librdkafka's security properties for the configured protocol (nothing for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    config: dict[str, object] = {"security.protocol": protocol.lower()}
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_sasl_username or "",
            "sasl.password": password.get_secret_value() if password is not None else "",
        }
    if protocol.endswith("SSL") and settings.kafka_ssl_cafile is not None:
        config["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
    return config


def producer_config(settings: Settings) -> dict[str, object]:
    """Idempotent, batched producer for tools (CLI, benchmarks). murmur2 like Java and aiokafka,
    not librdkafka's CRC32 default, so records keyed by order_id land on the partition Faust
    expects whoever produced them."""
    return client_config(
        settings,
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
        },
    )


def reader_config(settings: Settings, **extra: object) -> dict[str, object]:
    """A throw-away consumer that reads committed records only and commits nothing."""
    import time

    return client_config(
        settings,
        **{
            "group.id": f"o2c-cli-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            **extra,
        },
    )


def admin(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def create_topics(
    settings: Settings, partitions: int | None = None, replication_factor: int | None = None
) -> dict[str, str]:
    """Create every SPEC §1 topic and the app's internal topics (the allocation saga's and the stores'
    compacted changelogs) that do not exist yet; returns name -> created|exists."""
    client = admin(settings)
    existing = set(client.list_topics(timeout=10).topics)
    changelogs = {settings.internal_topic(n) for n in CHANGELOGS}
    wanted = (
        [settings.topic(r) for r in TOPIC_ROLES]
        + [settings.internal_topic(n) for n in INTERNAL_TOPICS]
        + sorted(changelogs)
    )
    result = {name: "exists" for name in wanted if name in existing}
    new = [
        NewTopic(
            name,
            num_partitions=partitions or settings.partitions,
            replication_factor=replication_factor or settings.replication_factor,
            config=changelog_config(settings) if name in changelogs else {},
        )
        for name in wanted
        if name not in existing
    ]
    if new:
        for name, future in client.create_topics(new, operation_timeout=30).items():
            try:
                future.result()
                result[name] = "created"
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise
                result[name] = "exists"
        _wait_visible(client, [t.topic for t in new])
    return {name: result[name] for name in wanted}


class Publisher:
    """Produces single records and waits for the broker's acknowledgement (the HTTP layer's
    case actions; not for the pipeline's outputs, which go through the runtime's transactions)."""

    def __init__(self, settings: Settings) -> None:
        self.producer = Producer(producer_config(settings))

    def publish(self, topic: str, key: bytes, value: bytes, timeout: float = 10.0) -> None:
        errors: list[Any] = []
        self.producer.produce(topic, value, key, on_delivery=lambda err, _msg: errors.append(err))
        self.producer.flush(timeout)
        if not errors or errors[0] is not None:
            raise KafkaException(errors[0] if errors else KafkaError(KafkaError._TIMED_OUT, "not acknowledged"))


def changelog_config(settings: Settings) -> dict[str, str]:
    """A changelog keeps each key's latest state. The log cleaner only compacts closed segments:
    with the broker's default 1 GiB segment a partition's whole history stayed on disk (1M orders
    held, 491 MiB of changelog for 1M live keys); a segment of `O2C_CHANGELOG_SEGMENT_MB` closes
    and is cleaned once half of it is superseded."""
    return {
        "cleanup.policy": "compact",
        "segment.bytes": str(settings.changelog_segment_mb << 20),
        "min.cleanable.dirty.ratio": "0.5",
    }


def _wait_visible(client: AdminClient, names: list[str], timeout: float = 15.0) -> None:
    """Until the broker's metadata lists every partition of the new topics: creation returns
    once the controller has them, and a client asking the broker right away (an `o2c produce`
    checking that its topic exists) could be told it does not."""
    deadline = time.monotonic() + timeout
    while True:
        topics = client.list_topics(timeout=10).topics
        missing = [n for n in names if n not in topics or not topics[n].partitions or topics[n].error]
        if not missing:
            return
        if time.monotonic() > deadline:
            reason = f"topics created but not visible after {timeout:.0f} s: {', '.join(missing)}"
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, reason))
        time.sleep(0.1)
