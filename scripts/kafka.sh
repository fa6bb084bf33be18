#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) from Maven Central jars, no Docker.
#
#   scripts/kafka.sh fetch   download the broker jars once into .cache/kafka/<version>/libs
#   scripts/kafka.sh up      fetch if needed, format storage, start, wait until it answers, record PID
#   scripts/kafka.sh down    stop the PID recorded by `up` (never by name)
#   scripts/kafka.sh status  say whether the recorded PID is alive
#
# Environment: KAFKA_VERSION (pinned below, see docs/kafka.md), KAFKA_PORT (9092),
# KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_STATE_DIR (.cache/kafka-run-<port>),
# KAFKA_SASL_PORT (unset: no SASL listener; KAFKA_SASL_USER/KAFKA_SASL_PASSWORD for PLAIN),
# KAFKA_HEAP (512m), KAFKA_FRESH=1 wipes the state dir before starting, KAFKA_EXTRA_PROPERTIES
# (lines appended to server.properties).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_VERSION=${KAFKA_VERSION:-4.3.1}
SCALA_VERSION=2.13
LOG4J_VERSION=2.24.3
SLF4J_VERSION=2.0.17
PORT=${KAFKA_PORT:-9092}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
CACHE="$ROOT/.cache"
LIBS="$CACHE/kafka/$KAFKA_VERSION/libs"
STATE=${KAFKA_STATE_DIR:-$CACHE/kafka-run-$PORT}
# Optional second listener with SASL/PLAIN, for tests of the clients' security settings.
SASL_PORT=${KAFKA_SASL_PORT:-}
SASL_USER=${KAFKA_SASL_USER:-o2c}
SASL_PASSWORD=${KAFKA_SASL_PASSWORD:-o2c-secret}
SASL_LISTENER=${SASL_PORT:+,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT}
PIDFILE="$STATE/kafka.pid"

log() { echo "[kafka] $*" >&2; }

fetch() {
  if [ -f "$LIBS/.complete" ]; then
    return 0
  fi
  command -v mvn >/dev/null || { log "Maven (mvn) is required to fetch the broker jars"; exit 1; }
  command -v java >/dev/null || { log "Java 17+ is required to run the broker"; exit 1; }
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  local work="$CACHE/kafka/$KAFKA_VERSION/pom"
  mkdir -p "$work" "$LIBS"
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>o2c-streams</groupId><artifactId>local-kafka</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$SCALA_VERSION</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  mvn -q -B -f "$work/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS"
  touch "$LIBS/.complete"
}

alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

write_config() {
  mkdir -p "$STATE/data"
  cat >"$STATE/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT$SASL_LISTENER
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT$SASL_LISTENER
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$STATE/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
EOF
  if [ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]; then  # one property per line, for experiments
    printf '%s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$STATE/server.properties"
  fi
  if [ -n "$SASL_PORT" ]; then
    cat >>"$STATE/server.properties" <<EOF
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$SASL_PASSWORD";
EOF
  fi
  cat >"$STATE/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $STATE/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.server.name = org.apache.kafka.server
logger.server.level = INFO
EOF
}

up() {
  fetch
  if alive; then
    log "already running (PID $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
    return 0
  fi
  for port in "$PORT" "$CONTROLLER_PORT" $SASL_PORT; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "port $port on 127.0.0.1 is already in use; set KAFKA_PORT (and KAFKA_CONTROLLER_PORT)"
      exit 1
    fi
  done
  [ "${KAFKA_FRESH:-0}" = 1 ] && rm -rf "$STATE"
  write_config
  local cp="$LIBS/*"
  if [ ! -f "$STATE/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -Dlog4j2.configurationFile="$STATE/log4j2.properties" -cp "$cp" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$STATE/server.properties" >"$STATE/format.log" 2>&1 \
      || { cat "$STATE/format.log" >&2; exit 1; }
  fi
  log "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$PORT (state in $STATE)"
  setsid nohup java -Xms"${KAFKA_HEAP:-512m}" -Xmx"${KAFKA_HEAP:-512m}" -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$STATE/log4j2.properties" -Djava.awt.headless=true \
    -cp "$cp" kafka.Kafka "$STATE/server.properties" >"$STATE/stdout.log" 2>&1 &
  echo $! >"$PIDFILE"
  wait_ready
}

# Ready = the broker answers a metadata request, checked with the project's own Python client.
wait_ready() {
  local py="$ROOT/.venv/bin/python"
  [ -x "$py" ] || py=python3
  for _ in $(seq 1 120); do
    if ! alive; then
      log "broker exited during start-up; last log lines:"
      tail -n 30 "$STATE/stdout.log" "$STATE/server.log" >&2 2>/dev/null || true
      exit 1
    fi
    if "$py" - "$PORT" <<'EOF' 2>/dev/null
import socket, sys
from confluent_kafka.admin import AdminClient
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1); s.close()
md = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"}).list_topics(timeout=2)
sys.exit(0 if md.brokers else 1)
EOF
    then
      log "ready (PID $(cat "$PIDFILE"))"
      return 0
    fi
    sleep 0.5
  done
  log "broker did not become ready in 60 s"
  exit 1
}

down() {
  if ! alive; then
    log "not running"
    rm -f "$PIDFILE"
    return 0
  fi
  local pid
  pid=$(cat "$PIDFILE")
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; log "stopped (PID $pid)"; return 0; }
    sleep 0.5
  done
  log "PID $pid did not stop in 30 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

status() {
  if alive; then echo "running (PID $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; else echo "not running"; return 1; fi
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 fetch|up|down|status" >&2; exit 2 ;;
esac
