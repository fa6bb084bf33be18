"""The one settings object of o2c-streams: every knob is an `O2C_*` environment variable.

Defaults fit the local single-node broker that `make kafka-up` starts, so a fresh
clone runs with no configuration at all.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tables.risk import RiskThresholds
from tables.sla import SlaPolicy

SINK_NAMES = ("webhook", "postgres")
"""The output adapters of `sinks/` (`sinks.create_sink`); named here so that settings, which
validate `O2C_SINKS`, import nothing from the adapters that read them."""

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="O2C_", extra="ignore", frozen=True,
        hide_input_in_errors=True,  # a mistyped secret (a token, a password) stays out of error text
    )

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated."
    )
    topic_prefix: str = Field(
        "o2c.", description="Prefix of every topic name: `o2c.` gives `o2c.orders`."
    )
    partitions: int = Field(4, ge=1, description="Partitions of the topics the app creates.")
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    app_id: str = Field(
        "o2c-streams",
        description="Application id: consumer group, transactional id and internal topic prefix.",
    )
    web_host: str = Field("127.0.0.1", description="Interface the worker's HTTP API binds to.")
    web_port: int = Field(6066, description="Port of the worker's HTTP API.")
    web_canonical_url: str | None = Field(
        None,
        description="URL other workers use to reach this one (default http://web_host:web_port).",
    )
    data_dir: Path = Field(
        REPO_ROOT / "data", description="Directory for RocksDB tables and worker state."
    )
    schemas_dir: Path = Field(
        REPO_ROOT / "schemas", description="Directory holding the `.avsc` event contracts."
    )
    schema_registry_url: str | None = Field(
        None,
        description="Confluent Schema Registry URL; when set, values use the Confluent wire "
        "format instead of Avro single-object encoding. `mock://` works for tests.",
    )
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field(
        "exactly_once", description="Processing guarantee (docs/runtime.md)."
    )
    standby_replicas: int = Field(
        1, ge=0, description="0: no standbys. 1 or more: every worker follows the changelogs of the "
        "partitions it does not process, so a moving partition restores only a short tail and its keys "
        "are answered from the standby copy (marked stale) while it moves (docs/runtime.md)."
    )
    commit_interval: float = Field(
        0.025, gt=0, description="Longest time (s) between commits; each commit is one Kafka transaction "
        "and makes the outputs visible. The worker commits sooner when it has nothing left to process."
    )
    max_task_idle: float = Field(
        0.0, ge=0, description="Seconds an agent waits for an input partition that has no record "
        "buffered and none on the broker (a quiet source) before it processes the others' later "
        "records (Kafka Streams' max.task.idle.ms). 0: wait only for records known to exist."
    )
    buffered_records_per_partition: int = Field(
        5_000, ge=10, description="Records an agent buffers per input partition before fetching it "
        "pauses (until a fifth is left): the event-time merge picks among the buffered heads (Kafka "
        "Streams' buffered.records.per.partition)."
    )
    alignment_horizon: float = Field(
        5.0, ge=0, description="An agent reading what another agent sends (the allocation saga) waits "
        "until that agent's progress in business time is past the record it would process next, so "
        "a backlog gives the same outcome however it is fetched; records whose business time is within "
        "this many seconds of the wall clock (live traffic) go without waiting: latency first "
        "(docs/runtime.md)."
    )
    align_answers: bool = Field(
        False, description="The order agent also waits for the inventory agent's progress before an "
        "event of an order an answer may still change (a request not answered, a backorder): a backlog "
        "then gives the same status sequences, exceptions and ATP however it is fetched or spread over "
        "workers, at the cost of an allocation round trip per wait (about 18x slower catch-up, "
        "docs/runtime.md). Live traffic is not held (alignment_horizon)."
    )
    transaction_timeout: float = Field(
        10.0, gt=0, description="Kafka transaction timeout (s): how long the outputs of a worker that "
        "died without restarting can hold up read_committed readers."
    )
    worker_id: str | None = Field(
        None, description="Stable name of this worker (its transactional id); default from the "
        "canonical URL's host and port. Two running workers must never share one."
    )
    session_timeout: float = Field(
        10.0, gt=0, description="Consumer group session timeout (s): how soon a dead worker's "
        "partitions move to the others."
    )
    heartbeat_interval: float = Field(3.0, gt=0, description="Consumer group heartbeat (s).")
    state_cache_entries: int = Field(
        50_000, ge=0, description="Decoded values each table keeps in memory across commits (order "
        "states, SKU ledgers, cases, KPI sums; an order state is about 9 KB decoded)."
    )
    rocksdb_memory_mb: int = Field(
        256, ge=8, description="MiB of RocksDB block cache and memtables, shared by every table and "
        "SLA index partition of the worker (docs/runtime.md)."
    )
    restore_processes: int = Field(
        0, ge=0, description="Processes that replay long changelog tails and rebuild SLA indexes side "
        "by side after an assignment (helpers, sharing O2C_ROCKSDB_MEMORY_MB; the worker waits for "
        "them): rocksdict holds the interpreter lock while it writes, so one process restores about "
        "36k records/s. 0: one per core, at most 4; 1: the worker alone (docs/runtime.md)."
    )
    changelog_segment_mb: int = Field(
        64, ge=1, description="Segment size (MiB) of the changelog topics this app creates: the log "
        "cleaner compacts closed segments only (docs/runtime.md)."
    )
    timeline_entries: int = Field(
        16, ge=0, description="Changes kept in full in each order's timeline (GET "
        "/orders/{id}/timeline); older ones are summarised; 0 keeps no timeline (docs/operations-api.md)."
    )
    batch_size: int = Field(1000, ge=1, description="Most records an agent takes per batch.")
    sla_policy_path: Path | None = Field(
        None,
        description="TOML file of SLA due times per milestone, overridden per channel and "
        "(channel, region); unset: the SPEC defaults (docs/sla.md, docs/sla-policy.example.toml).",
    )
    sla_clock: Literal["wall", "event"] = Field(
        "wall",
        description="Clock that decides when an SLA is breached: `wall` (live operations) or "
        "`event` (stream time, the highest occurred_at seen per partition: replays, backfills).",
    )
    sla_risk_thresholds: str = Field(
        "50,75,90", description="Shares (%) of a milestone's allowed time at which it becomes MEDIUM, "
        "HIGH and CRITICAL at risk (GET /sla/at-risk; docs/operations-api.md)."
    )
    sla_check_interval: float = Field(
        1.0, gt=0, description="Seconds between SLA checks with the wall clock."
    )
    log_level: str = Field("INFO", description="Python logging level.")

    # -- Kafka security (docs/kafka.md): every client of the app uses these -------------------
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism with `SASL_*` protocols."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle (PEM) that signed the brokers' certificates, with `SSL`/`SASL_SSL`."
    )

    # -- HTTP API access (docs/security.md) ---------------------------------------------------
    auth_enabled: bool = Field(
        True, description="Every HTTP request but the open paths (/health, /ready, /openapi.json, the "
        "console's static files, /metrics if public) needs `Authorization: Bearer <token>` of a token in "
        "O2C_API_TOKENS with a role allowed to do it. Off only for a local run: the worker then warns at "
        "startup (docs/security.md)."
    )
    api_tokens: SecretStr = Field(
        SecretStr(""), description="API tokens as `role:name:sha256-hex-of-token` entries, comma "
        "separated; roles viewer, operator, admin. `o2c token new --role R --name N` makes a token and "
        "its entry. A worker with auth on and no token refuses to start."
    )
    metrics_public: bool = Field(
        True, description="Serve /metrics without a token (Prometheus scrapes it; it holds aggregate "
        "counts and sums, no order or customer). false: /metrics needs a viewer token."
    )

    # -- sinks (docs/sinks.md): downstream consumers of the status topic ----------------------
    sinks: str = Field(
        "",
        description="Sinks the worker runs, comma separated: `webhook`, `postgres` (empty: none; "
        "`o2c sink run --sink NAME` runs one on its own).",
    )
    sink_batch_size: int = Field(500, ge=1, description="Most status events a sink takes per batch.")
    sink_retry_max: float = Field(
        30.0,
        gt=0,
        description="Longest pause (s) before a sink retries a batch it could not take at all "
        "(e.g. database down); pauses double from 0.5 s.",
    )
    webhook_url: str | None = Field(None, description="URL the webhook sink POSTs status events to.")
    webhook_secret: SecretStr | None = Field(
        None, description="Key of the `X-O2C-Signature` HMAC-SHA256 header (unset: unsigned)."
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds one webhook request may take.")
    webhook_max_attempts: int = Field(
        5, ge=1, description="Webhook attempts per status event before it is dead-lettered."
    )
    webhook_backoff_initial: float = Field(
        0.5, ge=0, description="Backoff cap (s) before the 2nd webhook attempt; doubles per attempt."
    )
    webhook_backoff_max: float = Field(
        30.0, ge=0, description="Largest backoff cap (s) between webhook attempts (full jitter)."
    )
    webhook_concurrency: int = Field(
        8, ge=1, description="Webhook requests in flight at once (one order's events stay in order)."
    )
    postgres_dsn: SecretStr | None = Field(
        None, description="PostgreSQL DSN of the postgres sink, e.g. `postgresql://u@host:5432/db`."
    )

    @field_validator("sinks")
    @classmethod
    def _known_sinks(cls, value: str) -> str:
        unknown = [n for n in _names(value) if n not in SINK_NAMES]
        if unknown:
            raise ValueError(f"unknown sink(s) {', '.join(unknown)}; known: {', '.join(SINK_NAMES)}")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _api_tokens(cls, value: SecretStr) -> SecretStr:
        from streams.api.auth import parse_tokens  # pure; imported here to keep settings light

        parse_tokens(value.get_secret_value())  # AuthConfigError (a ValueError) names the bad entry
        return value

    @field_validator("sla_risk_thresholds")
    @classmethod
    def _risk_thresholds(cls, value: str) -> str:
        RiskThresholds.parse(value)  # ThresholdError (a ValueError) says what is wrong
        return value

    @property
    def sink_names(self) -> list[str]:
        return _names(self.sinks)

    @cached_property
    def risk_thresholds(self) -> RiskThresholds:
        return RiskThresholds.parse(self.sla_risk_thresholds)

    @cached_property
    def api_token_entries(self) -> tuple:
        """The configured API tokens (streams.api.auth.ApiToken), parsed."""
        from streams.api.auth import parse_tokens

        return parse_tokens(self.api_tokens.get_secret_value())

    @property
    def restore_helpers(self) -> int:
        """Helper processes a restore or an SLA index rebuild may start (`restore_processes`)."""
        processes = self.restore_processes or min(4, len(os.sched_getaffinity(0)))
        return processes if processes > 1 else 0

    @cached_property
    def sla_policy(self) -> SlaPolicy:
        """The SLA policy file, parsed and validated (PolicyError names the bad entry)."""
        return SlaPolicy.load(self.sla_policy_path)

    @cached_property
    def canonical_url(self) -> str:
        return self.web_canonical_url or f"http://{self.web_host}:{self.web_port}"

    def topic(self, name: str) -> str:
        """Full topic name for a base name such as `orders` or `order-status`."""
        return f"{self.topic_prefix}{name}"

    def internal_topic(self, name: str) -> str:
        """Name of an internal topic of this application (like Faust's changelogs, prefixed
        with the app id, not the topic prefix: two apps on the same topics keep their own)."""
        return f"{self.app_id}-{name}"


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def load_settings(**overrides: object) -> Settings:
    """Read the environment; explicit overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
