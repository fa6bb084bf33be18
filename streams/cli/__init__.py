"""`o2c`, the command line (`python -m streams.cli`): the worker, topics, producing and reading
events, the simulator, dead-letter replay, schema checks (streams/cli/main.py)."""

from streams.cli.main import main

__all__ = ["main"]
