#!/usr/bin/env bash
# `make test`: start a private broker (unless O2C_BOOTSTRAP_SERVERS points at one), run the
# whole suite against it, and stop the broker on every exit path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The browser tests (tests/browser) drive Debian's Chromium through Playwright: install it when
# missing (CI runs as root with Debian's packages reachable). Never `playwright install`.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium for the browser tests (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null \
      || echo "!!! apt-get could not install chromium: the browser tests will fail or skip" >&2
  else
    echo "!!! /usr/bin/chromium is missing and apt-get cannot run here: THE BROWSER TESTS WILL BE SKIPPED" >&2
  fi
fi

source scripts/private_broker.sh
port=${O2C_TEST_KAFKA_PORT:-19092}
start_private_broker "$port" "$PWD/.cache/kafka-test-$port"  # per port: runs side by side
export O2C_REQUIRE_KAFKA=1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
