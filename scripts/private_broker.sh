# Sourced by test.sh and bench.sh: unless O2C_BOOTSTRAP_SERVERS points at a broker, start a
# private one (fresh state) on port $1 with state in $2, stop it on every exit path, and point
# O2C_BOOTSTRAP_SERVERS at it.
start_private_broker() {
  if [ -n "${O2C_BOOTSTRAP_SERVERS:-}" ]; then
    return 0
  fi
  export KAFKA_PORT=$1
  export KAFKA_STATE_DIR=$2
  export KAFKA_FRESH=1
  export KAFKA_SASL_PORT=$(($1 + 2))  # a SASL/PLAIN listener too (tests/integration/test_kafka_security.py)
  trap 'scripts/kafka.sh down' EXIT
  scripts/kafka.sh up
  export O2C_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT"
  export O2C_TEST_SASL_SERVERS="127.0.0.1:$KAFKA_SASL_PORT"
}
