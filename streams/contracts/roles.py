"""The topics of SPEC §1 by role, and their keys: the one definition the codec, the processors, the
topic admin, the CLI, the benchmarks and the tests read.

A role is a topic's name without the configurable prefix (`orders` is `o2c.orders` by default,
`Settings.topic`); internal topics are named after the app id instead (`Settings.internal_topic`).
The simulator keeps its own copy because it imports nothing from the project
(tests/unit/test_simulate.py checks that the two agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

ORDER_ROLES: tuple[str, ...] = ("orders", "shipments", "payments")
"""Inputs keyed by `order_id`: the order agent's, and what a status event can be caused by."""
INPUT_ROLES: tuple[str, ...] = (*ORDER_ROLES, "inventory")
OUTPUT_ROLES: tuple[str, ...] = ("order-status", "atp", "sla-breaches", "exceptions")
CASE_ACTIONS = "case-actions"
"""People's actions on cases (POST /cases/...), keyed by the case's order_id or sku."""
CASES = "cases"
"""Case changes, for downstream ticketing."""
OPERATIONS_ROLES: tuple[str, ...] = (CASE_ACTIONS, CASES)
"""The exception work queue's topics (issue 16): not SPEC §1's, Avro like every topic."""
CONTRACT_ROLES: tuple[str, ...] = INPUT_ROLES + OUTPUT_ROLES + OPERATIONS_ROLES
"""Every role with an Avro contract in `schemas/`."""
DEAD_LETTER = "dlq"
"""The dead-letter topic: the failed record's own bytes, the reason in headers (SPEC §7)."""
TOPIC_ROLES: tuple[str, ...] = (*CONTRACT_ROLES, DEAD_LETTER)
"""Every SPEC §1 topic the application creates and the CLI accepts."""

KEY_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "orders": ("order_id",),
        "shipments": ("order_id",),
        "payments": ("order_id",),
        "inventory": ("sku",),
        "order-status": ("order_id",),
        "atp": ("sku",),
        "sla-breaches": ("order_id",),
        "exceptions": ("order_id", "sku"),
        CASE_ACTIONS: ("case_key",),
        CASES: ("order_id", "sku"),
    }
)
"""Kafka key of each contract topic: the first non-null of these fields."""

ALLOCATION_REQUESTS = "allocation-requests"
"""Order agent -> inventory agent, keyed by `sku` (streams/processors/saga.py)."""
ALLOCATION_RESULTS = "allocation-results"
"""Inventory agent -> order agent, keyed by `order_id`."""
CASE_EVENTS = "case-events"
"""Both agents -> the case agent: cases opened, causes cleared (streams/processors/cases.py)."""
INTERNAL_TOPICS: tuple[str, ...] = (ALLOCATION_REQUESTS, ALLOCATION_RESULTS, CASE_EVENTS)
CHANGELOGS: tuple[str, ...] = (
    "orders-changelog", "inventory-changelog", "sla-stream-time-changelog", "kpis-changelog", "cases-changelog",
)
"""Compacted topics holding the stores' state (streams/runtime/store.py)."""
