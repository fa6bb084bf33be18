"""`o2c`: the command line source systems, downstream teams and operators use.

Sub-commands: produce, consume, dlq replay, topics create, schemas check, simulate, worker, token new,
sink run.
Exit codes: 0 success, 1 bad input or failed delivery, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import IO

from confluent_kafka import KafkaException
from pydantic import ValidationError

from streams.contracts.roles import INPUT_ROLES
from streams.logs import configure_logging
from streams.runtime.topics import producer_config, reader_config
from streams.settings import SINK_NAMES, Settings, load_settings

log = logging.getLogger("o2c.cli")
ROLE_CHOICES = ("viewer", "operator", "admin")  # streams.api.auth.Role, without importing aiohttp here


class CliError(Exception):
    """A user-facing error: printed as `o2c: <message>` with exit code 1."""


# --------------------------------------------------------------------------- produce


def read_events(stream: IO[str], role: str) -> list[tuple[str, dict]]:
    """Parse and validate every line first, so invalid input produces nothing at all."""
    from streams.contracts.flat import ValidationError, key_of, to_record

    records: list[tuple[str, dict]] = []
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            flat = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(f"line {lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(flat, dict):
            raise CliError(f"line {lineno}: expected a JSON object, got {type(flat).__name__}")
        try:
            records.append((key_of(role, flat), to_record(role, flat)))
        except ValidationError as exc:
            raise CliError(f"line {lineno}: {exc}") from None
    return records


class Delivery:
    """Produces encoded records with an idempotent producer and counts what the broker acked."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Producer

        from streams.contracts.codec import Codec

        self.settings = settings
        self.codec = Codec(settings)
        self.producer = Producer(producer_config(settings))
        self.delivered = 0
        self.errors: list[str] = []

    def _on_delivery(self, err, _msg) -> None:  # noqa: ANN001 - confluent callback
        if err is None:
            self.delivered += 1
        else:
            self.errors.append(str(err))

    def send(self, role: str, key: str, record: dict) -> None:
        value = self.codec.encode(role, record)
        topic = self.settings.topic(role)
        while True:
            try:
                self.producer.produce(topic, value=value, key=key.encode(), on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def close(self) -> None:
        remaining = self.producer.flush(60)
        if remaining:
            self.errors.append(f"{remaining} records still unacknowledged after 60 s")
        if self.errors:
            raise CliError(f"delivery failed for {len(self.errors)} records: {self.errors[0]}")


def ensure_topic_exists(settings: Settings, role: str) -> None:
    from streams.runtime.topics import admin

    topic = settings.topic(role)
    if topic not in admin(settings).list_topics(timeout=10).topics:
        raise CliError(
            f"topic {topic!r} does not exist on {settings.bootstrap_servers}; run `o2c topics create`"
        )


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    role = resolve_role(settings, args.topic)
    if role == "dlq":
        raise CliError("the dead-letter topic holds raw records; use `o2c dlq replay` instead")
    source = sys.stdin if args.file in (None, "-") else open(args.file, encoding="utf-8")
    with source:
        records = read_events(source, role)
    ensure_topic_exists(settings, role)
    started = time.perf_counter()
    delivery = Delivery(settings)
    for key, record in records:
        delivery.send(role, key, record)
    delivery.close()
    elapsed = time.perf_counter() - started
    rate = delivery.delivered / elapsed if elapsed > 0 else 0.0
    print(
        f"produced {delivery.delivered} events to {settings.topic(role)} in {elapsed:.2f} s ({rate:,.0f}/s)"
    )
    return 0


def resolve_role(settings: Settings, topic: str) -> str:
    from streams.runtime.topics import UnknownTopic, role_of

    try:
        return role_of(settings, topic)
    except UnknownTopic as exc:
        raise CliError(str(exc)) from None


# --------------------------------------------------------------------------- consume


def describe_dead_letter(msg) -> dict:  # noqa: ANN001 - confluent Message
    import base64

    from streams.processors.deadletter import ERROR_HEADERS, HEADER_PREFIX

    headers = {k: (v.decode("utf-8", "replace") if v is not None else None) for k, v in (msg.headers() or [])}
    out = {h: headers.get(f"{HEADER_PREFIX}{h}") for h in ERROR_HEADERS}
    out["value_base64"] = base64.b64encode(msg.value() or b"").decode()
    return out


def cmd_consume(args: argparse.Namespace, settings: Settings) -> int:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    from streams.contracts.codec import Codec, CodecError
    from streams.contracts.flat import to_flat

    role = resolve_role(settings, args.topic)
    topic = settings.topic(role)
    codec = Codec(settings)
    consumer = Consumer(reader_config(settings, **{"enable.partition.eof": False}))
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        consumer.close()
        raise CliError(f"topic {topic!r} does not exist on {settings.bootstrap_servers}")
    start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
    consumer.assign([TopicPartition(topic, p, start) for p in sorted(metadata.partitions)])
    printed = failures = 0
    idle_since = time.monotonic()
    try:
        while args.max is None or printed < args.max:
            msg = consumer.poll(0.2)
            if msg is None:
                if args.timeout is not None and time.monotonic() - idle_since >= args.timeout:
                    break
                continue
            idle_since = time.monotonic()
            if msg.error():
                raise CliError(f"consume failed: {msg.error()}")
            if role == "dlq":
                out = describe_dead_letter(msg)
            else:
                try:
                    out = to_flat(role, codec.decode(role, msg.value()), iso_timestamps=not args.epoch_millis)
                except CodecError as exc:
                    failures += 1
                    print(
                        f"o2c: {topic} partition {msg.partition()} offset {msg.offset()}: "
                        f"undecodable record: {exc}",
                        file=sys.stderr,
                    )
                    continue
            if args.meta:
                key = msg.key()
                out = {
                    "_key": key.decode("utf-8", "replace") if key is not None else None,
                    "_partition": msg.partition(),
                    "_offset": msg.offset(),
                    **out,
                }
            sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
            printed += 1
    finally:
        consumer.close()
        sys.stdout.flush()
    if failures:
        print(f"o2c: {failures} undecodable records on {topic}", file=sys.stderr)
        return 1
    return 0


def read_to_end(settings: Settings, topic: str):  # noqa: ANN201 - yields confluent Messages
    """Every record of `topic` up to its end offsets at call time (read_committed).

    A partition is done at its last record before the end offset or at its end of partition,
    whichever comes first: a topic written in transactions (the worker's dead letters) ends with
    a commit marker, so its last record is never at end offset - 1."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({**reader_config(settings), "enable.partition.eof": True})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise CliError(f"topic {topic!r} does not exist on {settings.bootstrap_servers}")
        ends = {}
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        while ends:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    ends.pop(msg.partition(), None)
                    continue
                raise CliError(f"consume failed: {msg.error()}")
            yield msg
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
    finally:
        consumer.close()


def parse_position(spec: str) -> tuple[int, int]:
    try:
        partition, offset = (int(x) for x in spec.split(":"))
    except ValueError:
        raise CliError(f"--offset takes PARTITION:OFFSET, got {spec!r}") from None
    return partition, offset


def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Re-publish chosen dead letters to the topic they came from, with their original key and
    headers. A sink's dead letter (header `o2c.sink`) is a status event every other consumer of
    the status topic already has: it is delivered again to that sink only, never re-published
    (that would repeat its `(order_id, seq)` on the topic)."""
    from confluent_kafka import Producer

    from streams.processors.deadletter import HEADER_PREFIX

    wanted = {parse_position(spec) for spec in args.offset} if args.offset else None
    producer = Producer(producer_config(settings))
    replayed = 0
    for_sinks: dict[str, list] = {}
    for msg in read_to_end(settings, settings.topic("dlq")):
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (msg.headers() or [])}
        if wanted is not None and (msg.partition(), msg.offset()) not in wanted:
            continue
        if args.error_class and headers.get(f"{HEADER_PREFIX}error_class") != args.error_class:
            continue
        source = headers.get(f"{HEADER_PREFIX}source_topic")
        if source is None or (
            args.source_topic and source != settings.topic(resolve_role(settings, args.source_topic))
        ):
            continue
        original = [(k, v) for k, v in (msg.headers() or []) if not k.startswith(HEADER_PREFIX)]
        replayed += 1
        sink = headers.get(f"{HEADER_PREFIX}sink")
        target = f"sink {sink}" if sink else source
        if args.dry_run:
            print(f"would replay dlq partition {msg.partition()} offset {msg.offset()} -> {target}")
        elif sink:
            for_sinks.setdefault(sink, []).append((msg, original))
        else:
            producer.produce(source, key=msg.key(), value=msg.value(), headers=original)
            producer.poll(0)
    if producer.flush(60):
        raise CliError("replay: some records were not acknowledged within 60 s")
    failed = sum(asyncio.run(redeliver(settings, name, letters)) for name, letters in for_sinks.items())
    print(f"{'would replay' if args.dry_run else 'replayed'} {replayed - failed} dead letters")
    if failed:
        raise CliError(f"replay: {failed} dead letters could not be delivered to their sink again")
    return 0


async def redeliver(settings: Settings, sink_name: str, letters: list) -> int:
    """Deliver status events dead-lettered by a sink to that sink again; returns the failures."""
    from sinks import create_sink
    from sinks.base import StatusRecord
    from streams.contracts.codec import Codec

    codec = Codec(settings)
    sink = create_sink(sink_name, settings)
    records = [
        StatusRecord(
            codec.decode_flat("order-status", msg.value()), msg.key(), msg.value(), headers,
            settings.topic("order-status"), msg.partition(), msg.offset(),
        )
        for msg, headers in letters
    ]
    await sink.start()
    try:
        report = await sink.deliver(records)
    finally:
        await sink.stop()
    for failure in report.failed:
        print(f"o2c: {sink_name}: order {failure.record.order_id} seq {failure.record.seq}: {failure.error}",
              file=sys.stderr)
    return len(report.failed)


# --------------------------------------------------------------------------- topics / schemas


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from streams.runtime.topics import create_topics

    for name, state in create_topics(settings, args.partitions, args.replication_factor).items():
        print(f"{name}\t{state}")
    return 0


def cmd_schemas_check(args: argparse.Namespace, settings: Settings) -> int:
    from streams.contracts.schema_check import main as check_main

    return check_main([str(args.schemas_dir or settings.schemas_dir)])


# --------------------------------------------------------------------------- simulate


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from streams.contracts.flat import key_of, to_record
    from streams.simulator.simulate import SimulationConfig, Summary, generate, live, rate_limited

    try:
        config = SimulationConfig(orders=args.orders, seed=args.seed, lapse_share=args.lapse_share)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.live is not None and args.live <= 0:
        raise CliError("--live must be a positive speedup, e.g. 1440")
    for role in INPUT_ROLES:
        ensure_topic_exists(settings, role)
    delivery = Delivery(settings)
    counts = Summary()
    started = time.perf_counter()
    events = generate(config)
    if args.live is not None:
        events = live(events, args.live, config.start_at)
    for sim in counts.tap(rate_limited(events, args.rate)):
        delivery.send(sim.role, key_of(sim.role, sim.event), to_record(sim.role, sim.event))
    delivery.close()
    elapsed = time.perf_counter() - started
    rate = delivery.delivered / elapsed if elapsed > 0 else 0.0
    for line in counts:
        print(line)
    print(
        f"simulated {delivery.delivered} events for {args.orders} orders in {elapsed:.2f} s ({rate:,.0f}/s)"
    )
    return 0


# --------------------------------------------------------------------------- worker


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.api.auth import AuthConfigError
    from streams.app import run_worker

    try:
        return run_worker(settings)
    except AuthConfigError as exc:
        raise CliError(str(exc)) from None


# --------------------------------------------------------------------------- token


def cmd_token_new(args: argparse.Namespace, settings: Settings) -> int:
    """A new API token, printed once; only its hash goes into the configuration (docs/security.md)."""
    from streams.api.auth import AuthConfigError, Role, new_token

    try:
        token, entry = new_token(Role.named(args.role), args.name)
    except AuthConfigError as exc:
        raise CliError(str(exc)) from None
    print(f"# API token for {entry.name} ({entry.role.label}); shown once, store it in a secret manager:")
    print(token)
    print("# append this entry to O2C_API_TOKENS (comma separated), e.g. in the chart's Secret:")
    print(entry.entry())
    return 0


# --------------------------------------------------------------------------- sink


def cmd_sink_run(args: argparse.Namespace, settings: Settings) -> int:
    """One sink on its own process, e.g. to scale or restart it apart from the workers."""
    import asyncio

    from sinks import create_sink
    from streams.downstream.sink_runner import run_sink

    try:
        sink = create_sink(args.sink, settings)
    except ValueError as exc:  # not configured, e.g. no O2C_WEBHOOK_URL
        raise CliError(str(exc)) from None
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=settings.web_host)
    asyncio.run(run_sink(settings, sink))
    return 0


# --------------------------------------------------------------------------- wiring


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="o2c", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("produce", help="produce JSON-lines events (validated first) to a topic")
    p.add_argument("topic", help="topic name (o2c.orders) or role (orders)")
    p.add_argument("file", nargs="?", help="JSON-lines file, or - for stdin (default)")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("consume", help="print a topic's records as JSON lines")
    p.add_argument("topic")
    p.add_argument("--from-beginning", action="store_true", help="start at the earliest offset")
    p.add_argument("--max", type=int, help="stop after N records")
    p.add_argument("--timeout", type=float, help="stop after SECONDS without a new record")
    p.add_argument("--meta", action="store_true", help="add _key, _partition and _offset")
    p.add_argument("--epoch-millis", action="store_true", help="print timestamps as epoch ms, not ISO-8601")
    p.set_defaults(func=cmd_consume)

    p = sub.add_parser("dlq", help="dead-letter tools")
    dsub = p.add_subparsers(dest="dlq_command", required=True)
    d = dsub.add_parser("replay", help="re-publish chosen dead letters to their source topic")
    d.add_argument("--offset", action="append", help="PARTITION:OFFSET of a dead letter (repeatable)")
    d.add_argument("--error-class", help="only dead letters with this error class")
    d.add_argument("--source-topic", help="only dead letters that came from this topic")
    d.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    d.set_defaults(func=cmd_dlq_replay)

    p = sub.add_parser("topics", help="manage topics")
    tsub = p.add_subparsers(dest="topics_command", required=True)
    t = tsub.add_parser("create", help="create every topic of SPEC §1")
    t.add_argument("--partitions", type=int)
    t.add_argument("--replication-factor", type=int)
    t.set_defaults(func=cmd_topics_create)

    p = sub.add_parser("schemas", help="schema tools")
    ssub = p.add_subparsers(dest="schemas_command", required=True)
    s = ssub.add_parser("check", help="fail if a schema change breaks reading released data")
    s.add_argument("--schemas-dir")
    s.set_defaults(func=cmd_schemas_check)

    p = sub.add_parser("simulate", help="produce a realistic, deterministic event stream")
    p.add_argument("--orders", type=int, default=1000)
    p.add_argument("--rate", type=float, default=None, help="events per second (default: unlimited)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lapse-share", type=float, default=0.01,
                   help="share of orders that never reach some milestone (SLA breaches), 0..1")
    p.add_argument("--live", type=float, metavar="SPEEDUP",
                   help="send events in real time, business time starting now and running SPEEDUP "
                   "times as fast (1440: a day per minute); event times are shifted to match")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("worker", help="start a stream-processing worker")
    p.add_argument("--web-port", type=int, help="overrides O2C_WEB_PORT")
    p.add_argument("--data-dir", help="overrides O2C_DATA_DIR")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("token", help="HTTP API tokens (docs/security.md)")
    osub = p.add_subparsers(dest="token_command", required=True)
    o = osub.add_parser("new", help="print a new random API token once, and its O2C_API_TOKENS entry")
    o.add_argument("--role", required=True, choices=ROLE_CHOICES)
    o.add_argument("--name", required=True, help="who holds the token (logged on refusals; unique)")
    o.set_defaults(func=cmd_token_new)

    p = sub.add_parser("sink", help="status-event sinks (docs/sinks.md)")
    ksub = p.add_subparsers(dest="sink_command", required=True)
    k = ksub.add_parser("run", help="deliver the status topic to one sink until stopped")
    k.add_argument("--sink", required=True, choices=SINK_NAMES)
    k.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    k.set_defaults(func=cmd_sink_run)
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    overrides = {}
    if getattr(args, "web_port", None):
        overrides["web_port"] = args.web_port
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    try:
        settings = load_settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            name = "O2C_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"o2c: setting {name}: {error['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("librdkafka").setLevel(logging.CRITICAL)
    try:
        return args.func(args, settings)
    except CliError as exc:
        print(f"o2c: {exc}", file=sys.stderr)
        return 1
    except KafkaException as exc:
        print(f"o2c: Kafka at {settings.bootstrap_servers} failed: {exc.args[0].str()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

