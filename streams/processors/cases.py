"""The case agent: the exception work queue (issue 16 point 1; rules in tables/cases.py,
decisions in docs/operations-api.md).

Cases have one owner, this agent, whatever raised them: it reads the case facts the order and
inventory agents send on the internal `case-events` topic (a case opened; an order's state that
cleared a case's cause) and the people's actions on `o2c.case-actions`, both keyed by the case's
order_id or sku, so a case, its facts and its actions meet on one partition. Each case is one
value of the `cases` store, under `<order_id or sku> 0x1F <case_id>` on its key's partition (one
value per key grew past Kafka's 1 MB record limit for SKUs with thousands of open NEGATIVE_ATP
cases at 100k orders); every change is published on `o2c.cases` (Avro) in the
same transaction as the store write and the input offsets: exactly once, and it survives
restarts and handovers like any state.

The order agent keeps the cases it opened and has not seen cleared in the order's state
(`OrderState.open_cases`), so that it can tell after each transition which causes are gone
without asking this agent; a case resolved by a person meanwhile ignores the late news.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from streams.contracts.codec import Codec, CodecError
from streams.contracts.roles import CASE_ACTIONS, CASE_EVENTS, CASES
from streams.metrics import METRICS
from streams.processors.case_index import CaseIndex, CaseIndexes
from streams.processors.deadletter import dead_letter
from streams.runtime.processor import BatchAgent, local_db_options, record_key
from streams.settings import Settings
from tables.cases import (
    Case,
    CaseAction,
    CasePage,
    CaseQuery,
    CaseTransitionError,
    apply_action,
    auto_resolve,
    page_of,
)

log = logging.getLogger("o2c.cases")

_SEP = b"\x1f"


def store_key(key: str, case_id: str) -> bytes:
    return key.encode() + _SEP + case_id.encode()


FILL_SLICE = 0.02
"""Seconds of the runtime thread one `punctuate` spends reading stored cases into an index."""
FILL_AT_ASSIGNMENT = 0.5
"""Seconds an assignment may spend on it before the partition is ready (then: slices)."""


class CaseIndexFilling(Exception):
    """The listing cannot be complete yet (HTTP 503, Retry-After)."""


class CaseFactError(CodecError):
    """A case-events record that is not a case fact."""


def case_events_topic(settings: Settings) -> str:
    return settings.internal_topic(CASE_EVENTS)


def opened_fact(case: Case) -> bytes:
    return json.dumps({"open": case.to_list()}, separators=(",", ":")).encode()


def cleared_fact(case_id: str, note: str, at: int) -> bytes:
    return json.dumps({"clear": case_id, "note": note, "at": at}, separators=(",", ":")).encode()


def encode_case(case: Case) -> bytes:
    return case.to_bytes()


def decode_case(raw: bytes) -> Case:
    return Case.from_bytes(raw)


class CaseAgent(BatchAgent):
    name = "o2c.cases"

    def __init__(self, settings: Settings, codec: Codec, notify: Callable[[str], None] | None = None) -> None:
        topics = {settings.topic(CASE_ACTIONS): CASE_ACTIONS, case_events_topic(settings): CASE_EVENTS}
        super().__init__(settings, topics)
        self.codec = codec
        self.notify = notify or (lambda key: None)
        self.cases_topic = settings.topic(CASES)
        self.store = self.new_store("cases", decode_case, encode_case)
        self.punctuate_interval = FILL_SLICE * 1.5  # two thirds of the thread while reading in
        # Per active partition, its cases in listing order (streams/processors/case_index.py, in
        # RocksDB: memory does not grow with the cases held). Every case change goes in at once.
        # An index not proven current when its partition comes is rebuilt from the stored cases
        # by `punctuate`, a slice at a time (`_filling`), so that neither processing nor a
        # query waits for a whole partition (some 20 s of work for two million cases).
        self.case_indexes = CaseIndexes(settings.data_dir / f"{settings.app_id}-case-index", local_db_options(settings))
        self.indexes: dict[int, CaseIndex] = {}
        self._filling: dict[int, Iterator[tuple[bytes, bytes]]] = {}
        self.store.on_discard.append(self._refill)

    def assigned(self, partitions: set[int]) -> None:
        for partition in partitions:
            index = self.case_indexes.open(partition)
            persisted = self.store.position(partition)
            if persisted is None or index.covered_offset() != persisted:
                self._rebuild(partition)
            else:
                self.indexes[partition] = index
        self._fill(FILL_AT_ASSIGNMENT)  # tens of thousands of cases: ready with the assignment

    def _rebuild(self, partition: int) -> None:
        self.indexes[partition] = self.case_indexes.reset(partition)
        self._filling[partition] = self.store.raw_items(partition)

    def revoked(self, partitions: set[int]) -> None:
        with self.store.mutex:  # a query walking an index holds it: not closed under its feet
            for partition in partitions:  # before the store closes the partition's DB
                self.indexes.pop(partition, None)
                self._filling.pop(partition, None)
                self.case_indexes.close(partition)

    def _refill(self) -> None:
        """After an abort the indexes may hold changes that were never committed: start over."""
        with self.store.mutex:
            for partition in list(self.indexes):
                self._rebuild(partition)

    def committed(self) -> None:
        """Mark each index whose partition has nothing uncommitted (and is read in) as covering
        the partition's persisted changelog position: a restart trusts it."""
        uncommitted = self.store.uncommitted_partitions()
        for partition, index in self.indexes.items():
            if partition in uncommitted or partition in self._filling:
                continue
            persisted = self.store.position(partition)
            if persisted is not None and not (index.marked and index.covered_offset() == persisted):
                index.set_covered_offset(persisted)

    def punctuate(self, out: Any) -> None:
        self._fill(FILL_SLICE)

    def _fill(self, budget: float) -> None:
        if not self._filling:
            return
        deadline = time.perf_counter() + budget
        with self.store.mutex:
            for partition, rows in list(self._filling.items()):
                index = self.indexes[partition]
                for n, (key, raw) in enumerate(rows):
                    index.add_stored(json.loads(raw), key)  # a change since is in already: kept
                    if n % 64 == 63 and time.perf_counter() > deadline:
                        return
                del self._filling[partition]
                log.info("case index of partition %d: %d cases", partition, len(index))

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
        owner = record.key.decode()
        partition = record.partition
        if isinstance(item, Case):  # opened by an agent: an id seen before keeps its case
            key = store_key(owner, item.case_id)
            if self.store.get(partition, key) is not None:
                return
            changed = item
        elif isinstance(item, CaseAction):
            key = store_key(owner, item.case_id)
            current = self.store.get(partition, key)
            if current is None:
                log.warning("case action %s for unknown case %s: ignored", item.action_id, item.case_id)
                return
            try:
                changed = apply_action(current, item)
            except CaseTransitionError as exc:  # another action won the race since the POST
                log.info("case action %s on %s refused: %s", item.action_id, item.case_id, exc)
                return
            if changed is current:  # a repeated action
                return
        else:
            case_id, note, when = item
            key = store_key(owner, case_id)
            current = self.store.get(partition, key)
            if current is None or current.is_resolved:
                return
            changed = auto_resolve(current, note, when)
        self.store.put(partition, key, changed)
        index = self.indexes.get(partition)
        if index is not None:
            index.put(changed, key)
        send(self.cases_topic, record.key, self.codec.encode(CASES, changed.to_record()), None)
        METRICS.child(METRICS.case_changes, changed.state).inc()
        log.debug("case %s version %d %s", changed.case_id, changed.version, changed.state)
        self.notify(changed.case_id)

    # ------------------------------------------------------------------ queries (HTTP thread)

    def lookup(self, key: str, case_id: str) -> tuple[bool, Case | None]:
        """(owned here, the case): `PartitionedStore.lookup_owned` for a case's composite key."""
        return self.store.lookup_owned(store_key(key, case_id), self.store.partition_of(key.encode()))

    def counts(self) -> dict[str, Any]:
        """`{"by_state_severity": {state: {severity: n}}, "indexing": partitions}` of the active
        partitions (for /stats; partial while `indexing` > 0)."""
        by: dict[str, dict[str, int]] = {}
        with self.store.mutex:
            for index in self.indexes.values():
                for (state, severity), n in index.counts.items():
                    if n:
                        of_state = by.setdefault(state, {})
                        of_state[severity] = of_state.get(severity, 0) + n
            return {"by_state_severity": by, "indexing": len(self._filling)}

    def local_page(self, query: CaseQuery) -> CasePage:
        """This worker's page of the listing: the first `limit` matching cases of its active
        partitions after the cursor (the asking worker merges every worker's page). Raises
        CaseIndexFilling while a partition's index is still being read in."""
        selected: list[Case] = []
        with self.store.mutex:
            if self._filling:
                filled = sum(len(self.indexes[p]) for p in self._filling)
                raise CaseIndexFilling(
                    f"reading the stored cases of partition(s) {sorted(self._filling)} into the listing's"
                    f" index ({filled:,} so far)"
                )
            for partition, index in self.indexes.items():
                for key in index.select(query):
                    case = self.store.lookup_at(partition, key)
                    if case is not None:
                        selected.append(case)
        return page_of(selected, query)
