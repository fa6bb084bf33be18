"""Logging set-up: one line per record, `key=value` context so operators can grep by order_id."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger once; Faust's own handlers are left alone."""
    root = logging.getLogger()
    if not any(getattr(h, "_o2c", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._o2c = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())

