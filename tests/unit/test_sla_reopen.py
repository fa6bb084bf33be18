"""Reopening a partition's SLA index (streams/processors/sla.py `_open`): trusted when it covers
the persisted states, caught up on the replayed tail when it covered the states the replay
started from, rebuilt otherwise. A worker holding many orders must come back in time
proportional to what changed, not to what it holds (issue 14)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streams.processors.sla import SlaChecks
from streams.runtime.processor import table_store
from streams.settings import load_settings
from tables.order_state import OrderState

HOUR = 3_600_000


def placed(order_id: str, at: int) -> OrderState:
    """An order placed and not accepted: its ACCEPTANCE deadline is 4 h later."""
    return OrderState(order_id, placed_at=at, channel="EDI", region="EU")


@pytest.fixture
def world(tmp_path: Path):
    settings = load_settings(data_dir=tmp_path, sla_clock="wall", app_id="reopen")
    store = table_store(settings, "orders", OrderState.from_bytes, OrderState.to_bytes)
    checks = SlaChecks(settings, store, lambda *args: False)
    yield store, checks
    checks.close_all()
    store.close_all()


def replay(store, records: list[OrderState | tuple[str, None]], position: int) -> None:
    store.open(0)
    store.restore_batch(
        0,
        [(r[0].encode(), None) if isinstance(r, tuple) else (r.order_id.encode(), r.to_bytes()) for r in records],
        position,
    )


def reopen(checks: SlaChecks, caplog) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="o2c.sla"):
        checks.close({0})
        checks.open({0})
    said = [r.getMessage() for r in caplog.records if "SLA due index" in r.getMessage()]
    return said[0].split(": ")[0].split("partition 0 ")[1] if said else "current"


def deadlines(checks: SlaChecks) -> dict[str, int]:
    index = checks.ready[0]
    return {order_id: due for order_id, _, due in index.due(10**15)}


def test_trusted_caught_up_or_rebuilt(world, caplog) -> None:
    store, checks = world
    replay(store, [placed("SO-1", 0), placed("SO-2", HOUR)], 3)
    assert reopen(checks, caplog) == "rebuilt"  # a new index covers nothing
    assert deadlines(checks) == {"SO-1": 4 * HOUR, "SO-2": 5 * HOUR}

    assert reopen(checks, caplog) == "current"  # nothing replayed, covered == persisted

    # A tail replayed (a restore after a handover, a standby): only its orders are indexed.
    replay(store, [placed("SO-3", 2 * HOUR), ("SO-1", None)], 6)
    assert reopen(checks, caplog) == "caught up on the replayed tail"
    assert deadlines(checks) == {"SO-2": 5 * HOUR, "SO-3": 6 * HOUR}

    # A replay that found only a commit marker moves the position, not the index.
    replay(store, [], 7)
    assert reopen(checks, caplog) == "caught up on the replayed tail"
    assert reopen(checks, caplog) == "current"

    # The index changed after its mark (a crash with writes ahead of the committed states):
    # it no longer says what it covers, so a replay cannot be trusted to catch it up.
    checks.ready[0].schedule("SO-9", {"ACCEPTANCE": 1})
    replay(store, [placed("SO-4", 0)], 9)
    assert reopen(checks, caplog) == "rebuilt"
    assert deadlines(checks) == {"SO-2": 5 * HOUR, "SO-3": 6 * HOUR, "SO-4": 4 * HOUR}


def test_a_commit_that_moved_no_deadline_moves_the_mark(world, caplog) -> None:
    store, checks = world
    replay(store, [placed("SO-1", 0)], 3)
    assert reopen(checks, caplog) == "rebuilt"
    # The states moved on (a commit persisted position 5) without any index write.
    store.restore_batch(0, [], 5)
    store.take_replayed(0)
    checks.mark_covered()
    assert reopen(checks, caplog) == "current"
