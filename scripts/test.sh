#!/usr/bin/env bash
# `make test`: start a private broker (unless O2C_BOOTSTRAP_SERVERS points at one), run the
# whole suite against it, and stop the broker on every exit path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/private_broker.sh
start_private_broker "${O2C_TEST_KAFKA_PORT:-19092}" "$PWD/.cache/kafka-test"
export O2C_REQUIRE_KAFKA=1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
