"""The case listing's index, one local RocksDB per `cases` store partition (issue 14 point 4).

An in-memory index (sorted lists of every case) cost about 950 bytes per case held, history
included: a worker's memory grew with the cases it had ever opened (1.4 cases per order in the
simulation, so about 1.3 GB at a million orders), where the settings are meant to bound it. Kept
in RocksDB under the worker's shared memory budget (streams/runtime/rocks.py), the index costs
disk, and a page reads the entries it walks:

    b"a" | opened_at + 2**63 (8 bytes, big endian) | case_id                 -> entry
    b"u" | opened_at + 2**63 | case_id   (unresolved cases only: the work queue)  -> entry
    b"o" | len (2 bytes) | order_id | opened_at + 2**63 | case_id  (an order's)   -> entry
    b"s" | len (2 bytes) | sku | opened_at + 2**63 | case_id       (a SKU's)     -> entry

Keys sort as `tables.cases.sort_key` does, `(opened_at, case_id)` (UTF-8 bytes sort as code
points), so a page walks one family from its cursor and stops after `limit + 1` matches, as
before. An entry is the JSON of the case's store key and `Facets`, the same in every family
(filters read no other key). Counts by state and severity are kept in memory and written with
each change (`/stats`, and skipping walks that cannot match).

Like the SLA due index (due_index.py), it is derived data and not in a changelog: a covered
offset says which persisted state of the `cases` store it reflects; any write removes the mark,
and an index without a current mark is rebuilt from the stored cases when its partition comes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rocksdict import Options, WriteBatch

from streams.runtime.processor import PartitionIndexes, open_index_db
from tables.cases import CASE_FORMAT, Case, CaseQuery, CaseState, Facets, Position, matches, sort_key

_ALL = b"a"
_UNRESOLVED = b"u"
_OF_ORDER = b"o"
_OF_SKU = b"s"
_COUNTS = b"m:counts"
_COVERED = b"m:covered-offset"
_BIAS = 1 << 63
_AT = struct.Struct(">Q")
_LEN = struct.Struct(">H")


def _position(position: Position) -> bytes:
    opened_at, case_id = position
    return _AT.pack(opened_at + _BIAS) + case_id.encode()


def _owner(family: bytes, owner: str) -> bytes:
    raw = owner.encode()
    return family + _LEN.pack(len(raw)) + raw


def _entry(facets: Facets, ref: bytes) -> bytes:
    return json.dumps(
        [ref.decode(), facets.state, facets.code, facets.severity, facets.warehouse_id, facets.region,
         facets.channel, facets.customer_id, facets.order_id, facets.sku],
        separators=(",", ":"),
    ).encode()


def _read_entry(raw: bytes) -> tuple[Facets, bytes]:
    v = json.loads(raw)
    return Facets(*v[1:]), v[0].encode()


class CaseIndex:
    """One partition's cases in listing order, with their facets (see the module docstring)."""

    def __init__(self, path: Path, options: Options | None = None) -> None:
        self.path = Path(path)
        self.db = open_index_db(self.path, options)  # no WAL: its covered mark says when to trust it
        self._marked = self.db.get(_COVERED) is not None
        raw = self.db.get(_COUNTS)
        self.counts: dict[tuple[str, str], int] = (
            {(state, severity): n for state, severity, n in json.loads(raw)} if raw is not None else {}
        )

    def __len__(self) -> int:
        return sum(self.counts.values())

    # ------------------------------------------------------------------ writes
    def put(self, case: Case, ref: bytes) -> None:
        """A case opened or changed (its position never changes: opened_at and id are fixed)."""
        self._put(sort_key(case), Facets.of(case), ref, replace=True)

    def add_stored(self, values: Sequence[Any], ref: bytes) -> None:
        """A case as stored (`Case.to_list`), read in while the index is rebuilt: ignored when a
        change of it came in since (`put`). Reads only what the index keeps (no Case built)."""
        if not values or values[0] != CASE_FORMAT:
            raise ValueError(f"unsupported case format {values[0] if values else None!r}")
        self._put((values[4], values[1]), Facets.of_stored(values), ref, replace=False)

    def _put(self, position: Position, facets: Facets, ref: bytes, *, replace: bool) -> None:
        pos = _position(position)
        before = self.db.get(_ALL + pos)
        if before is not None and not replace:
            return
        batch = WriteBatch(raw_mode=True)
        entry = _entry(facets, ref)
        batch.put(_ALL + pos, entry)
        if facets.state != CaseState.RESOLVED:
            batch.put(_UNRESOLVED + pos, entry)
        elif before is not None:
            batch.delete(_UNRESOLVED + pos)  # resolved: never back
        if facets.order_id is not None:
            batch.put(_owner(_OF_ORDER, facets.order_id) + pos, entry)
        if facets.sku is not None:
            batch.put(_owner(_OF_SKU, facets.sku) + pos, entry)
        counts = self.counts
        if before is not None:
            was, _ = _read_entry(before)
            counts[was.state, was.severity] -= 1
        counts[facets.state, facets.severity] = counts.get((facets.state, facets.severity), 0) + 1
        batch.put(_COUNTS, json.dumps([[s, v, n] for (s, v), n in counts.items() if n]).encode())
        if self._marked:  # changed since it was marked current: no longer proven current
            batch.delete(_COVERED)
            self._marked = False
        self.db.write(batch)

    # ------------------------------------------------------------------ reads
    def select(self, query: CaseQuery) -> list[bytes]:
        """The refs of the first `limit + 1` cases matching `query` after its cursor, in order
        (`page_of` of them is this partition's page). From any thread: RocksDB reads see the
        writes of the runtime thread as they land."""
        states, severities = query.states, query.severities
        if not any(n for (state, severity), n in self.counts.items()
                   if (states is None or state in states) and (severities is None or severity in severities)):
            return []  # nothing to walk for
        if query.order_id is not None:
            prefix = _owner(_OF_ORDER, query.order_id)
        elif query.sku is not None:
            prefix = _owner(_OF_SKU, query.sku)
        elif states is not None and CaseState.RESOLVED not in states:
            prefix = _UNRESOLVED
        else:
            prefix = _ALL
        found: list[bytes] = []
        it = self.db.iter()
        after = None if query.after is None else prefix + _position(query.after)
        it.seek(after if after is not None else prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            if key != after:
                facets, ref = _read_entry(it.value())
                if matches(facets, query):
                    found.append(ref)
                    if len(found) > query.limit:
                        break
            it.next()
        del it
        return found

    # ------------------------------------------------------------------ consistency marker
    def covered_offset(self) -> int | None:
        """The `cases` store offset set by `set_covered_offset`, unless the index changed since."""
        raw = self.db.get(_COVERED)
        return None if raw is None else int(raw)

    def set_covered_offset(self, offset: int) -> None:
        """Record that the index reflects exactly the store's cases persisted up to changelog
        `offset` (after a commit that left the partition nothing uncommitted)."""
        self.db.put(_COVERED, str(offset).encode())
        self._marked = True

    @property
    def marked(self) -> bool:
        return self._marked

    def close(self) -> None:
        self.db.close()


class CaseIndexes(PartitionIndexes[CaseIndex]):
    """One `CaseIndex` per actively owned `cases` partition."""

    def __init__(self, root: Path, options: Callable[[], Options] = lambda: Options(raw_mode=True)) -> None:
        super().__init__(root, lambda path: CaseIndex(path, options()))
