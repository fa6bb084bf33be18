#!/usr/bin/env bash
# `make test`: start a private broker (unless O2C_BOOTSTRAP_SERVERS points at one), run the
# whole suite against it, and stop the broker on every exit path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${O2C_BOOTSTRAP_SERVERS:-}" ]; then
  export KAFKA_PORT=${O2C_TEST_KAFKA_PORT:-19092}
  export KAFKA_STATE_DIR="$PWD/.cache/kafka-test"
  export KAFKA_FRESH=1
  trap 'scripts/kafka.sh down' EXIT
  scripts/kafka.sh up
  export O2C_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT"
fi
export O2C_REQUIRE_KAFKA=1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
