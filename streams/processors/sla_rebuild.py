"""Rebuilding a partition's SLA due index from its stored order states, in a helper process when
the partition holds many.

A rebuild decodes every state (`OrderState.from_bytes`, about 52 us at 2,850 bytes): 39 s of a
full restore of 1M orders in one process, on one core. Partitions holding at least
`HELPER_STATES` states are rebuilt by helper processes (`python -m streams.processors.sla_rebuild`,
as many as `O2C_RESTORE_PROCESSES` allows, as the changelog restore does: streams/runtime/restore.py):
a helper opens the partition's orders RocksDB read-only (the worker keeps it open) and writes
the new index, which the worker then opens as it would one left by a clean shutdown.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rocksdict import AccessType, Rdict

from streams.processors.due_index import DueIndex
from streams.runtime.processor import rocks_options
from streams.runtime.store import OFFSET_KEY
from streams.settings import Settings
from tables.order_state import OrderState
from tables.risk import RiskThresholds, open_milestones
from tables.sla import SlaPolicy, pending_deadlines

log = logging.getLogger("o2c.sla")

HELPER_STATES = 50_000
"""Stored states (RocksDB's estimate) from which a partition's index is rebuilt by a helper."""
_CHUNK = 5_000


def rebuild(index: DueIndex, states: Iterable[bytes], policy: SlaPolicy, kind: str, thresholds: RiskThresholds) -> int:
    """Index the stored states (an empty index), a chunk at a time; the number of orders."""
    orders = 0
    deadlines: list[tuple[str, dict[str, int]]] = []
    breaches: list[tuple[str, list[dict[str, Any]], str | None, str | None]] = []
    risks: list[tuple[str, dict[str, tuple[int, int]], str | None, str | None]] = []
    for raw in states:
        state = OrderState.from_bytes(raw)
        due = pending_deadlines(state, policy, kind)
        deadlines.append((state.order_id, due))
        if state.open_breaches:
            breaches.append((state.order_id, state.open_breaches, state.channel, state.region))
        if due:
            milestones = open_milestones(state, policy, kind, due)
            risks.append((state.order_id, milestones, state.channel, state.region))
        if len(deadlines) >= _CHUNK:
            orders += index.load(deadlines)
            index.load_open_breaches(breaches)
            index.load_risks(risks, thresholds)
            deadlines, breaches, risks = [], [], []
    orders += index.load(deadlines)
    index.load_open_breaches(breaches)
    index.load_risks(risks, thresholds)
    return orders


def stored_states(db: Rdict) -> Iterable[bytes]:
    """The state values of an orders partition's RocksDB (not its changelog position)."""
    for key, raw in db.items():
        if key != OFFSET_KEY:
            yield raw


def rebuild_in_helpers(groups: list[list[int]], orders_dir: Path, index_root: Path, settings: Settings) -> dict[int, int]:
    """Rebuild each group's partitions in a helper process of its own (their indexes closed and
    deleted by the caller); orders indexed per partition."""
    job = {
        "orders_dir": str(orders_dir),
        "index_root": str(index_root),
        "settings": {
            "sla_policy_path": str(settings.sla_policy_path) if settings.sla_policy_path is not None else None,
            "sla_clock": settings.sla_clock,
            "sla_risk_thresholds": settings.sla_risk_thresholds,
            "rocksdb_memory_mb": max(16, settings.rocksdb_memory_mb // len(groups)),  # shared by the helpers
        },
    }
    procs = []
    for group in groups:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.processors.sla_rebuild"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({**job, "partitions": group}).encode())
        proc.stdin.close()
        procs.append((group, proc))
    orders: dict[int, int] = {}
    failed = []
    for group, proc in procs:
        assert proc.stdout is not None
        out = proc.stdout.read()
        if proc.wait() != 0:
            failed.append(group)
            continue
        orders.update({int(p): n for p, n in json.loads(out).items()})
    if failed:
        raise RuntimeError(f"rebuilding the SLA index of partitions {failed} in a helper failed")
    return orders


def _helper_main() -> None:
    """`python -m streams.processors.sla_rebuild`: the job (JSON) on stdin, orders per partition
    on stdout."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    job = json.loads(sys.stdin.buffer.read())
    settings = Settings(**{k: v for k, v in job["settings"].items() if v is not None})
    policy, thresholds = settings.sla_policy, settings.risk_thresholds
    result = {}
    for partition in job["partitions"]:
        options = rocks_options(settings.rocksdb_memory_mb)
        db = Rdict(str(Path(job["orders_dir"]) / str(partition)), options, access_type=AccessType.read_only())
        index = DueIndex(Path(job["index_root"]) / f"p{partition}", rocks_options(settings.rocksdb_memory_mb))
        try:
            result[partition] = rebuild(index, stored_states(db), policy, settings.sla_clock, thresholds)
        finally:
            index.close()
            db.close()
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    _helper_main()
