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


def test_helper_processes_rebuild_the_index_the_worker_builds_alone(tmp_path: Path, monkeypatch, caplog) -> None:
    """Partitions holding many states are rebuilt by helper processes (sla_rebuild.py): the
    index they leave is the one the worker builds itself, entry for entry, counts included."""
    from streams.processors import sla_rebuild
    from tables.sla import record_breach

    monkeypatch.setattr(sla_rebuild, "HELPER_STATES", 100)
    now = 1_700_000_000_000
    results = {}
    for processes in (2, 1):
        settings = load_settings(
            data_dir=tmp_path / str(processes), sla_clock="wall", app_id="reopen", partitions=3,
            restore_processes=processes,
        )
        store = table_store(settings, "orders", OrderState.from_bytes, OrderState.to_bytes)
        checks = SlaChecks(settings, store, lambda *args: False)
        for partition, n in ((0, 300), (1, 150), (2, 20)):  # two partitions for helpers, one not
            states = []
            for i in range(n):
                state = placed(f"SO-{partition}-{i}", now - (i % 7) * HOUR)
                if i % 5 == 0:
                    record_breach(state, "ACCEPTANCE", state.placed_at + 4 * HOUR, now, "wall")
                states.append(state)
            store.open(partition)
            store.restore_batch(partition, [(s.order_id.encode(), s.to_bytes()) for s in states], n + 1)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="o2c.sla"):
            checks.open({0, 1, 2})
        said = " | ".join(r.getMessage() for r in caplog.records)
        contents = {p: dict(checks.ready[p].db.items()) for p in range(3)}
        results[processes] = (contents, checks.counts(), checks.risk_counts(), sorted(checks.ready))
        checks.close_all()
        store.close_all()
        if processes == 2:
            assert "partitions [0, 1] rebuilt by 2 helper processes: 360 orders" in said
            assert "partition 2 rebuilt: 16 orders" in said  # breached orders have no deadline left
        else:
            assert "helper" not in said
    assert results[2] == results[1]
    assert results[2][1]  # breaches are in it
