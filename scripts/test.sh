#!/usr/bin/env bash
# `make test`: start a private broker (unless O2C_BOOTSTRAP_SERVERS points at one), run the
# whole suite against it, and stop the broker on every exit path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/private_broker.sh
port=${O2C_TEST_KAFKA_PORT:-19092}
start_private_broker "$port" "$PWD/.cache/kafka-test-$port"  # per port: runs side by side
export O2C_REQUIRE_KAFKA=1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
