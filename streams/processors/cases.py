"""The case agent: the exception work queue (issue 16 point 1; rules in tables/cases.py,
decisions in docs/operations-api.md).

Cases have one owner, this agent, whatever raised them: it reads the case facts the order and
inventory agents send on the internal `case-events` topic (a case opened; an order's state that
cleared a case's cause) and the people's actions on `o2c.case-actions`, both keyed by the case's
order_id or sku, so a case, its facts and its actions meet on one partition. The cases of one
key are one value of the `cases` store; every change is published on `o2c.cases` (Avro) in the
same transaction as the store write and the input offsets: exactly once, and it survives
restarts and handovers like any state.

The order agent keeps the cases it opened and has not seen cleared in the order's state
(`OrderState.open_cases`), so that it can tell after each transition which causes are gone
without asking this agent; a case resolved by a person meanwhile ignores the late news.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from streams.contracts.codec import Codec, CodecError
from streams.contracts.roles import CASE_ACTIONS, CASE_EVENTS, CASES
from streams.metrics import METRICS
from streams.processors.deadletter import dead_letter
from streams.runtime.processor import BatchAgent, record_key
from streams.settings import Settings
from tables.cases import Case, CaseAction, CaseTransitionError, apply_action, auto_resolve

log = logging.getLogger("o2c.cases")

MAX_CASES_PER_KEY = 200
"""Cases kept per order or SKU; beyond, the oldest resolved ones are dropped (the output topic
keeps every change)."""


class CaseFactError(CodecError):
    """A case-events record that is not a case fact."""


def case_events_topic(settings: Settings) -> str:
    return settings.internal_topic(CASE_EVENTS)


def opened_fact(case: Case) -> bytes:
    return json.dumps({"open": case.to_list()}, separators=(",", ":")).encode()


def cleared_fact(case_id: str, note: str, at: int) -> bytes:
    return json.dumps({"clear": case_id, "note": note, "at": at}, separators=(",", ":")).encode()


def encode_cases(cases: list[Case]) -> bytes:
    return json.dumps([c.to_list() for c in cases], separators=(",", ":")).encode()


def decode_cases(raw: bytes) -> list[Case]:
    return [Case.from_list(v) for v in json.loads(raw)]


class CaseAgent(BatchAgent):
    name = "o2c.cases"

    def __init__(self, settings: Settings, codec: Codec, notify: Callable[[str], None] | None = None) -> None:
        topics = {settings.topic(CASE_ACTIONS): CASE_ACTIONS, case_events_topic(settings): CASE_EVENTS}
        super().__init__(settings, topics)
        self.codec = codec
        self.notify = notify or (lambda key: None)
        self.cases_topic = settings.topic(CASES)
        self.store = self.new_store("cases", decode_cases, encode_cases)

    def decode(self, message: Any) -> Any:
        role = self.topics[message.topic]
        if role == CASE_ACTIONS:
            record = self.codec.decode(CASE_ACTIONS, message.value)
            item: Any = CaseAction(
                record["action_id"], record["case_id"], record["kind"], record["who"], record["occurred_at"],
                record.get("note"), record.get("assignee"),
            )
            key = record["case_key"]
        else:
            try:
                fact = json.loads(message.value)
                if "open" in fact:
                    item = Case.from_list(fact["open"])
                    key = item.key
                else:
                    item = (fact["clear"], fact["note"], fact["at"])
                    key = None
            except (ValueError, KeyError, TypeError) as exc:
                raise CaseFactError(f"not a case fact: {exc}") from exc
        if key is not None and record_key(message) != key:
            raise CodecError(f"record key {record_key(message)!r} does not match the case's key {key!r}")
        return item

    def process(self, records: Sequence[Any], out: Any) -> None:
        send = out.send
        with self.store.mutex:
            for record in records:
                try:
                    item = self.item_of(record)
                    self.apply(send, record, item)
                except CodecError as exc:
                    dead_letter(send, self.settings, record, exc)

    def apply(self, send: Any, record: Any, item: Any) -> None:
        key = record.key
        partition = record.partition
        cases = list(self.store.get(partition, key) or [])
        index = {c.case_id: i for i, c in enumerate(cases)}
        if isinstance(item, Case):  # opened by an agent: an id seen before keeps its case
            if item.case_id in index:
                return
            cases.append(item)
            changed = item
        elif isinstance(item, CaseAction):
            at = index.get(item.case_id)
            if at is None:
                log.warning("case action %s for unknown case %s: ignored", item.action_id, item.case_id)
                return
            try:
                changed = apply_action(cases[at], item)
            except CaseTransitionError as exc:  # another action won the race since the POST
                log.info("case action %s on %s refused: %s", item.action_id, item.case_id, exc)
                return
            if changed is cases[at]:  # a repeated action
                return
            cases[at] = changed
        else:
            case_id, note, when = item
            at = index.get(case_id)
            if at is None or cases[at].is_resolved:
                return
            changed = cases[at] = auto_resolve(cases[at], note, when)
        self.store.put(partition, key, _bounded(cases))
        send(self.cases_topic, key, self.codec.encode(CASES, changed.to_record()), None)
        METRICS.child(METRICS.case_changes, changed.state).inc()
        log.debug("case %s version %d %s", changed.case_id, changed.version, changed.state)
        self.notify(changed.case_id)

    # ------------------------------------------------------------------ queries (HTTP thread)

    def lookup(self, key: str, case_id: str) -> Case | None:
        for case in self.store.lookup(key.encode()) or ():
            if case.case_id == case_id:
                return case
        return None

    def local_cases(self) -> list[Case]:
        """Every case of the active partitions (the listing filters and pages them)."""
        found: list[Case] = []
        for partition in self.store.active_partitions():
            for _key, cases in self.store.items(partition):
                found.extend(cases)
        return found


def _bounded(cases: list[Case]) -> list[Case]:
    if len(cases) <= MAX_CASES_PER_KEY:
        return cases
    resolved = sorted((c for c in cases if c.is_resolved), key=lambda c: (c.resolved_at or 0, c.case_id))
    drop = {c.case_id for c in resolved[: len(cases) - MAX_CASES_PER_KEY]}
    return [c for c in cases if c.case_id not in drop]
