# o2c-streams — every target installs what it needs first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup kafka-up kafka-down run test test-unit lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e ".[test]"
	touch $@

kafka-up: setup
	scripts/kafka.sh up

kafka-down:
	scripts/kafka.sh down

# run.sh prints the console's URL before anything else, then installs what it needs (setup).
run:
	@scripts/run.sh

test: setup
	scripts/test.sh

# The pure rules, codecs and runtime units: no broker, under a minute.
test-unit: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

lint: setup
	$(BIN)/ruff check streams tables sinks tests scripts
	$(BIN)/o2c schemas check

bench: setup
	scripts/bench.sh

clean:
	rm -rf $(VENV) .cache data .pytest_cache .hypothesis
