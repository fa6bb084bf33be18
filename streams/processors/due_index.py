"""SLA deadlines indexed by due time, one local RocksDB per table partition, and the clocks.

Finding what is due must cost in proportion to what is due, not to the number of open
orders (SPEC §6). Keys sort by due time, so `due(now)` seeks to the earliest deadline and
stops at the first one not yet passed:

    b"d" | due_ms + 2**63 (8 bytes, big endian) | milestone rank (1 byte) | order_id   -> b""
    b"o" | order_id   -> the order's scheduled (rank, due_ms) pairs, 9 bytes each

The reverse entry makes rescheduling an order cost in proportion to its own deadlines
(at most seven). The partition's open breaches (for `GET /sla/breaches`) are kept the same way,
by due time, so that listing them costs in proportion to the breaches listed:

    b"b" | due_ms + 2**63 | milestone rank | order_id   -> JSON [detected_at, channel, region]
    b"c" | order_id   -> the order's open breaches as (rank, due_ms) pairs

The levels of risk of the orders' open milestones (tables/risk.py) are kept by the time each
level is reached, so that listing what is at or above a level at `now` costs in proportion to
what is listed (issue 16):

    b"r" | level rank | crossing_ms + 2**63 | milestone rank | order_id -> JSON [started_at, due_at, channel, region]
    b"q" | order_id   -> the order's risk entries as (level rank, crossing_ms, milestone rank)
 The index is derived data: tables.sla.pending_deadlines of the order
states. It is not in the changelog; `rebuild` recreates it from the states when a partition
is assigned unless its covered offset shows it is current (docs/sla.md says when and why).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from json.encoder import encode_basestring_ascii as _quoted  # json.dumps' form of a str
from pathlib import Path
from typing import Any

from rocksdict import Options, ReadOptions, WriteBatch

from streams.runtime.processor import PartitionIndexes, open_index_db
from tables.risk import LEVEL_RANK, LEVELS, RiskThresholds, crossings
from tables.sla import MILESTONE_RANK, MILESTONES, ClockKind

_BREACH = b"b"
_ORDER_BREACHES = b"c"
_DUE = b"d"
_ORDER = b"o"
_COVERED = b"m:covered-offset"
_RISKS_KEPT = b"m:risks-v1"  # present once the index holds the risk entries of every order
_RISK = b"r"
_ORDER_RISKS = b"q"
_RISK_KEY = struct.Struct(">cBQB")
_RISK_ENTRY = struct.Struct(">BQB")
_BIAS = 1 << 63  # signed ms -> unsigned, so that byte order is time order
_PAIR = struct.Struct(">BQ")
_DUE_KEY = struct.Struct(">cQB")
DEFAULT_LIMIT = 10_000
"""Most deadlines one `due()` call returns: bounds the work (and the transaction) of a check."""
_REMEMBERED = 10_000
"""Reverse entries (b"o", b"q") a `DueIndex` keeps in memory (about 1.5 MB), then it starts over."""


def _bounded(upper: bytes) -> ReadOptions:
    """Read options of an iterator that ends before `upper`."""
    options = ReadOptions()
    options.set_iterate_upper_bound(upper)
    return options


def _due_key(due_ms: int, rank: int, order_id: bytes, family: bytes = _DUE) -> bytes:
    return _DUE_KEY.pack(family, due_ms + _BIAS, rank) + order_id


def _json_text(text: str | None) -> str:
    if text is None:
        return "null"
    return _quoted(text) if type(text) is str else json.dumps(text)


def _risk_value(started: int, due: int, channel: str | None, region: str | None) -> bytes:
    """`json.dumps([started, due, channel, region]).encode()` (a risk entry's value), without
    the generic encoder: one is written per open milestone and change of deadlines."""
    if type(started) is not int or type(due) is not int:  # bool, float: as json.dumps writes them
        return json.dumps([started, due, channel, region]).encode()
    return f"[{started}, {due}, {_json_text(channel)}, {_json_text(region)}]".encode()


def _pairs(raw: bytes | None) -> list[tuple[int, int]]:
    return [] if raw is None else [(r, d - _BIAS) for r, d in _PAIR.iter_unpack(raw)]


class DueIndex:
    """The deadlines of one table partition's open orders, by due time."""

    def __init__(self, path: Path, options: Options | None = None) -> None:
        self.path = Path(path)
        self.db = open_index_db(self.path, options)
        self._marked = self.db.get(_COVERED) is not None
        self._low = _DUE  # no live deadline sorts below this key (see `due`)
        # Open breaches by milestone rank, and risk entries reached by `_risk_until` by (level
        # rank, milestone rank): kept as entries are written, so that the gauges and /stats
        # cost nothing per order held (a scrape walking every at-risk entry took seconds at
        # 200k orders). Written on the runtime thread only; `risk_counts` is its snapshot.
        self._breach_ranks: dict[int, int] = {}
        self._listed = self._orders_with_breaches()  # saves a read per order without any
        self._risk_until: int | None = None
        # Per listed family (open breaches, each risk level): no live entry sorts below this
        # key. Removed entries leave tombstones at the front of a family until a compaction,
        # and the HTTP listings stepped over all of them on every request (as `due` would
        # without `_low`). Lowered before any write below it; raised to the first live entry
        # by `refresh_risk_counts` on the runtime thread, the only writer, so a reader on
        # another thread never starts past a live entry.
        self._lows: dict[bytes, bytes] = {}
        self._risk_at_least: dict[tuple[int, int], int] = {}
        self.risk_snapshot: dict[tuple[str, str], int] = {}
        self.last_scan_reads = 0
        """Index entries read by the last `due()` call (instrumentation for the cost tests)."""
        self._deferred: WriteBatch | None = None  # the open batch of `deferred`
        # The reverse entries (b"o" and b"q" keys) as last written or read, None when absent:
        # every sync of a changed order reads them, and most changes of an order reschedule it.
        self._reverse: dict[bytes, bytes | None] = {}

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Collect the writes of `schedule`, `set_open_breaches` and `set_risks` in the block
        into one RocksDB write at its end (a write costs about as much as the rest of
        rescheduling an order). Reads of the RocksDB entries in the block see the index as it
        was before it, so each order may be changed once in a block (as `SlaChecks.sync`
        does)."""
        if self._deferred is not None:
            yield
            return
        batch = self._deferred = WriteBatch(raw_mode=True)
        try:
            yield
        finally:
            self._deferred = None
            if len(batch):
                self._write(batch)

    def _batch(self) -> WriteBatch:
        return self._deferred if self._deferred is not None else WriteBatch(raw_mode=True)

    def _read_reverse(self, key: bytes) -> bytes | None:
        """`db.get(key)` of a reverse entry, from memory when it was written or read before."""
        if key in self._reverse:
            return self._reverse[key]
        raw = self.db.get(key)
        self._remember(key, raw)
        return raw

    def _remember(self, key: bytes, value: bytes | None) -> None:
        if len(self._reverse) >= _REMEMBERED:
            self._reverse.clear()
        self._reverse[key] = value

    def _put_reverse(self, batch: WriteBatch, key: bytes, value: bytes | None) -> None:
        """Write (None: delete) a reverse entry in `batch`, which is written (or, deferred, at
        the end of the block): reads from then on see it."""
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
        self._remember(key, value)

    # ------------------------------------------------------------------ writes
    def schedule(self, order_id: str, deadlines: Mapping[str, int]) -> bool:
        """Make `deadlines` (milestone -> due ms) the order's entries, replacing the previous
        ones; an empty mapping unschedules. False when nothing changed (no write)."""
        oid = order_id.encode()
        new = sorted((MILESTONE_RANK[m], due) for m, due in deadlines.items())
        old = _pairs(self._read_reverse(_ORDER + oid))
        if new == old:
            return False
        batch = self._batch()
        self._replace(batch, oid, old, new)
        self._write(batch)
        return True

    def unschedule(self, order_id: str) -> bool:
        return self.schedule(order_id, {})

    def set_open_breaches(
        self,
        order_id: str,
        breaches: Sequence[Mapping[str, Any]],
        channel: str | None = None,
        region: str | None = None,
    ) -> bool:
        """Make `breaches` (the state's `open_breaches`) the order's listed open breaches; an
        empty list removes them. False when nothing changed (no write)."""
        oid = order_id.encode()
        if not breaches and oid not in self._listed:
            return False
        new = {(MILESTONE_RANK[b["milestone"]], b["due_at"]): b["detected_at"] for b in breaches}
        old = _pairs(self.db.get(_ORDER_BREACHES + oid))
        if sorted(new) == old:
            return False
        batch = self._batch()
        for rank, due in old:
            batch.delete(_due_key(due, rank, oid, _BREACH))
            self._breach_ranks[rank] -= 1
        self._put_breaches(batch, oid, new, channel, region)
        self._write(batch)
        return True

    def _put_breaches(
        self,
        batch: WriteBatch,
        oid: bytes,
        breaches: Mapping[tuple[int, int], int],
        channel: str | None,
        region: str | None,
    ) -> None:
        for (rank, due), detected in breaches.items():
            key = _due_key(due, rank, oid, _BREACH)
            self._lower(_BREACH, key)
            batch.put(key, json.dumps([detected, channel, region]).encode())
            self._breach_ranks[rank] = self._breach_ranks.get(rank, 0) + 1
        if breaches:
            batch.put(_ORDER_BREACHES + oid, b"".join(_PAIR.pack(r, d + _BIAS) for r, d in sorted(breaches)))
            self._listed.add(oid)
        else:
            batch.delete(_ORDER_BREACHES + oid)
            self._listed.discard(oid)

    def set_risks(
        self,
        order_id: str,
        milestones: Mapping[str, tuple[int, int]],
        thresholds: RiskThresholds,
        channel: str | None = None,
        region: str | None = None,
    ) -> bool:
        """Make the order's risk entries those of `milestones` (milestone -> (started_at,
        due_at), tables.risk.open_milestones): one per level above LOW, at the time it is
        reached. False when nothing changed (no write)."""
        oid = order_id.encode()
        spans = {MILESTONE_RANK[m]: span for m, span in milestones.items()}
        new = []
        for rank, (started, due) in spans.items():
            for level, at in crossings(started, due, thresholds).items():
                new.append((LEVEL_RANK[level], at + _BIAS, rank))
        new.sort()
        raw = self._read_reverse(_ORDER_RISKS + oid)
        old = list(_RISK_ENTRY.iter_unpack(raw)) if raw is not None else []
        if new == old:
            return False
        batch = self._batch()
        kept = set(old) & set(new) if old else set()  # entries that stay (same level, time and milestone)
        for level, at, rank in old:
            if (level, at, rank) not in kept:
                batch.delete(_RISK_KEY.pack(_RISK, level, at, rank) + oid)
                self._count_risk(level, at, rank, -1)
        values: dict[int, bytes] = {}
        for level, at, rank in new:
            if (level, at, rank) not in kept:
                self._count_risk(level, at, rank, 1)
                value = values.get(rank)
                if value is None:
                    started, due = spans[rank]
                    value = values[rank] = _risk_value(started, due, channel, region)
                key = _RISK_KEY.pack(_RISK, level, at, rank) + oid
                self._lower(_RISK + bytes([level]), key)
                batch.put(key, value)
        self._put_reverse(batch, _ORDER_RISKS + oid, b"".join(_RISK_ENTRY.pack(*e) for e in new) if new else None)
        self._write(batch)
        return True

    def load_risks(
        self, orders: Iterable[tuple[str, Mapping[str, tuple[int, int]], str | None, str | None]],
        thresholds: RiskThresholds,
    ) -> int:
        """`set_risks` for orders with no entries yet (after `clear`), in one write batch;
        `orders` are (order_id, milestones, channel, region). Returns the entries written."""
        n = 0
        batch = WriteBatch(raw_mode=True)
        for order_id, milestones, channel, region in orders:
            oid = order_id.encode()
            entries = []
            for m, (started, due) in milestones.items():
                rank = MILESTONE_RANK[m]
                value = json.dumps([started, due, channel, region]).encode()
                for level, at in crossings(started, due, thresholds).items():
                    entries.append((LEVEL_RANK[level], at + _BIAS, rank))
                    self._count_risk(LEVEL_RANK[level], at + _BIAS, rank, 1)
                    key = _RISK_KEY.pack(_RISK, LEVEL_RANK[level], at + _BIAS, rank) + oid
                    self._lower(_RISK + bytes([LEVEL_RANK[level]]), key)
                    batch.put(key, value)
            if entries:
                self._put_reverse(batch, _ORDER_RISKS + oid, b"".join(_RISK_ENTRY.pack(*e) for e in sorted(entries)))
                n += len(entries)
        if n:
            self._write(batch)
        return n

    def at_risk(self, level: str, now_ms: int) -> Iterator[dict[str, Any]]:
        """Open milestones at `level` or above at `now_ms` (order_id, milestone, started_at,
        due_at, channel, region), by the time they reached it; reads what it yields (and the
        tombstones of entries removed since the last compaction)."""
        prefix = _RISK + bytes([LEVEL_RANK[level]])
        bound = _RISK_KEY.pack(_RISK, LEVEL_RANK[level], now_ms + _BIAS + 1, 0)
        start = self._lows.get(prefix, prefix)
        if start >= bound:  # nothing live reached yet (and no walk into the next level's tombstones)
            return
        it = self.db.iter(_bounded(bound))
        it.seek(start)
        try:
            while it.valid():
                key = it.key()
                if key >= bound:
                    return
                _, _, _, rank = _RISK_KEY.unpack_from(key)
                started, due, channel, region = json.loads(it.value())
                yield {
                    "order_id": key[_RISK_KEY.size :].decode(),
                    "milestone": MILESTONES[rank],
                    "started_at": started,
                    "due_at": due,
                    "channel": channel,
                    "region": region,
                }
                it.next()
        finally:
            del it

    def _count_risk(self, level: int, at: int, rank: int, n: int) -> None:
        """An entry (`at` biased) written (n=1) or removed (-1): counted if reached already
        (LOW, which every open milestone starts at, is not counted)."""
        if level and self._risk_until is not None and at - _BIAS <= self._risk_until:
            key = (level, rank)
            self._risk_at_least[key] = self._risk_at_least.get(key, 0) + n

    def _lower(self, family: bytes, key: bytes) -> None:
        low = self._lows.get(family)
        if low is not None and key < low:
            self._lows[family] = key

    def _raise_lows(self) -> None:
        """Move each listed family's low mark up to its first live entry (over the tombstones
        left since the last time, once)."""
        for family in (_BREACH, *(_RISK + bytes([lr]) for lr in range(1, len(LEVELS)))):
            end = family[:-1] + bytes([family[-1] + 1])
            it = self.db.iter(_bounded(end))  # an empty family: no walk into the next one's tombstones
            it.seek(self._lows.get(family, family))
            self._lows[family] = it.key() if it.valid() else end
            del it

    def refresh_risk_counts(self, now_ms: int) -> dict[tuple[str, str], int]:
        """(milestone, level) -> open milestones exactly at that level at `now_ms` (the gauge);
        LOW is not counted (every open milestone starts there). Reads the entries reached since
        the last call (from the keys alone), all of them when `now_ms` went back. Also kept as
        `risk_snapshot`, for readers on other threads."""
        start = self._risk_until
        if start is None or now_ms < start:
            self._risk_at_least = {}
            start = None
        at_least = self._risk_at_least
        unpack = _RISK_KEY.unpack_from
        for level in LEVELS[1:]:
            lr = LEVEL_RANK[level]
            low = self._lows.get(_RISK + bytes([lr]), _RISK + bytes([lr]))
            first = max(_RISK_KEY.pack(_RISK, lr, start + _BIAS + 1, 0), low) if start is not None else low
            bound = _RISK_KEY.pack(_RISK, lr, now_ms + _BIAS + 1, 0)
            if first >= bound:
                continue
            for key in self.db.keys(from_key=first, read_opt=_bounded(bound)):  # no walk past `bound`
                rank = unpack(key)[3]
                at_least[(lr, rank)] = at_least.get((lr, rank), 0) + 1
        self._risk_until = now_ms
        self._raise_lows()
        exact = {}
        for (lr, rank), n in at_least.items():
            n -= at_least.get((lr + 1, rank), 0) if lr + 1 < len(LEVELS) else 0
            if n:
                exact[(MILESTONES[rank], LEVELS[lr])] = n
        self.risk_snapshot = exact
        return exact

    def _orders_with_breaches(self) -> set[bytes]:
        """Order ids with listed open breaches (read once, when the index is opened)."""
        found: set[bytes] = set()
        it = self.db.iter()
        it.seek(_ORDER_BREACHES)
        while it.valid() and (key := it.key()).startswith(_ORDER_BREACHES):
            found.add(key[1:])
            for rank, _ in _pairs(it.value()):
                self._breach_ranks[rank] = self._breach_ranks.get(rank, 0) + 1
            it.next()
        del it
        return found

    def load_open_breaches(
        self, orders: Iterable[tuple[str, Sequence[Mapping[str, Any]], str | None, str | None]]
    ) -> int:
        """`set_open_breaches` for orders listed nothing yet (after `clear`), in one write
        batch; `orders` are (order_id, open_breaches, channel, region). Returns the breaches."""
        n = 0
        batch = WriteBatch(raw_mode=True)
        for order_id, breaches, channel, region in orders:
            if breaches:
                entries = {(MILESTONE_RANK[b["milestone"]], b["due_at"]): b["detected_at"] for b in breaches}
                self._put_breaches(batch, order_id.encode(), entries, channel, region)
                n += len(entries)
        if n:
            self._write(batch)
        return n

    def breach_counts(self) -> dict[str, int]:
        """Open breaches by milestone (kept as they are written; a copy for other threads)."""
        return {MILESTONES[rank]: n for rank, n in sorted(dict(self._breach_ranks).items()) if n}

    def open_breaches(self) -> Iterator[dict[str, Any]]:
        """The listed open breaches in due-time order (order_id, milestone, due_at,
        detected_at, channel, region); the caller stops iterating when it has enough."""
        it = self.db.iter(_bounded(_ORDER_BREACHES))  # the end of the b"b" family
        it.seek(self._lows.get(_BREACH, _BREACH))
        try:
            while it.valid():
                key = it.key()
                if not key.startswith(_BREACH):
                    return
                _, due, rank = _DUE_KEY.unpack_from(key)
                detected, channel, region = json.loads(it.value())
                yield {
                    "order_id": key[_DUE_KEY.size :].decode(),
                    "milestone": MILESTONES[rank],
                    "due_at": due - _BIAS,
                    "detected_at": detected,
                    "channel": channel,
                    "region": region,
                }
                it.next()
        finally:
            del it

    def _replace(
        self, batch: WriteBatch, oid: bytes, old: list[tuple[int, int]], new: list[tuple[int, int]]
    ) -> None:
        for rank, due in set(old) - set(new):
            batch.delete(_due_key(due, rank, oid))
        for rank, due in set(new) - set(old):
            key = _due_key(due, rank, oid)
            batch.put(key, b"")
            if key < self._low:
                self._low = key
        self._put_reverse(batch, _ORDER + oid, b"".join(_PAIR.pack(r, d + _BIAS) for r, d in new) if new else None)

    def rebuild(self, deadlines: Iterable[tuple[str, Mapping[str, int]]]) -> int:
        """Drop every entry and index `(order_id, deadlines)` pairs instead; returns the
        number of orders with at least one deadline."""
        self.clear()
        return self.load(deadlines)

    def load(self, deadlines: Iterable[tuple[str, Mapping[str, int]]], batch_size: int = 10_000) -> int:
        """Index orders that have no entries yet (after `clear`), in write batches: call it
        chunk by chunk to rebuild without blocking an event loop for long."""
        n = 0
        batch = WriteBatch(raw_mode=True)
        pending = 0
        for order_id, ds in deadlines:
            if not ds:
                continue
            oid = order_id.encode()
            self._replace(batch, oid, [], sorted((MILESTONE_RANK[m], due) for m, due in ds.items()))
            n += 1
            pending += 1
            if pending >= batch_size:
                self._write(batch)
                batch = WriteBatch(raw_mode=True)
                pending = 0
        if pending:
            self._write(batch)
        return n

    def _write(self, batch: WriteBatch) -> None:
        if batch is self._deferred:  # written at the end of `deferred`
            return
        if self._marked:  # changed since it was marked current: no longer proven current
            batch.delete(_COVERED)
            self._marked = False
        self.db.write(batch)

    def clear(self) -> None:
        """Remove every entry and the covered offset (one range tombstone from b"b" to the
        end of the b"r" family)."""
        self.db.delete_range(_BREACH, b"s")
        self._reverse.clear()
        self._marked = False
        self._low = _DUE
        self._listed.clear()
        self._breach_ranks.clear()
        self._lows.clear()
        self._risk_until = None
        self._risk_at_least = {}
        self.risk_snapshot = {}

    @property
    def keeps_risks(self) -> bool:
        """False for an index written before it kept risk levels (rebuild it once)."""
        return self.db.get(_RISKS_KEPT) is not None

    def mark_risks_kept(self) -> None:
        self.db.put(_RISKS_KEPT, b"1")

    # ------------------------------------------------------------------ consistency marker
    @property
    def marked(self) -> bool:
        """True while the covered offset stands (no write since `set_covered_offset`)."""
        return self._marked

    def covered_offset(self) -> int | None:
        """The table offset set by `set_covered_offset`, unless the index changed since."""
        raw = self.db.get(_COVERED)
        return None if raw is None else int(raw)

    def set_covered_offset(self, offset: int) -> None:
        """Record that the index reflects exactly the table's states persisted up to
        changelog `offset` (call after a commit that left the partition nothing uncommitted,
        e.g. at shutdown). On assignment, an index whose covered offset equals the table's
        persisted offset needs no rebuild; any later `schedule` write removes the mark."""
        self.db.put(_COVERED, str(offset).encode())
        self._marked = True

    # ------------------------------------------------------------------ reads
    def due(self, now_ms: int, limit: int = DEFAULT_LIMIT) -> list[tuple[str, str, int]]:
        """`(order_id, milestone, due_ms)` of deadlines passed at `now_ms` (due < now), in
        due-time order, at most `limit`. Reads one entry more than it returns, at most.

        The scan starts at `_low`, not at the first key: deadlines removed after they were
        found leave tombstones at the front of the key space, and RocksDB would step over
        all of them on every seek until a compaction rewrites that file. `_low` moves up to
        the first live key a scan meets and down to any key written below it, so each
        tombstone is stepped over about once.
        """
        bound = _DUE_KEY.pack(_DUE, now_ms + _BIAS, 0)
        out: list[tuple[str, str, int]] = []
        reads = 0
        first = None
        it = self.db.iter()
        it.seek(self._low)
        while it.valid() and len(out) < limit:
            key = it.key()
            reads += 1
            if first is None:
                first = key
            if key >= bound:  # the first deadline not passed (or the reverse entries)
                break
            _, due, rank = _DUE_KEY.unpack_from(key)
            out.append((key[_DUE_KEY.size :].decode(), MILESTONES[rank], due - _BIAS))
            it.next()
        del it
        # no live deadline sorts below `first` (or at all, when `first` is not a deadline)
        self._low = first if first is not None and first.startswith(_DUE) else bound
        self.last_scan_reads = reads
        return out

    def deadlines(self, order_id: str) -> dict[str, int]:
        """The order's scheduled deadlines (milestone -> due ms)."""
        return {MILESTONES[r]: d for r, d in _pairs(self.db.get(_ORDER + order_id.encode()))}

    def next_due(self) -> int | None:
        """The earliest scheduled due time, or None when nothing is scheduled."""
        it = self.db.iter()
        it.seek(self._low)
        key = it.key() if it.valid() else None
        del it
        if key is None or not key.startswith(_DUE):
            return None
        return _DUE_KEY.unpack_from(key)[1] - _BIAS

    def close(self) -> None:
        self.db.close()


class DueIndexes(PartitionIndexes[DueIndex]):
    """One `DueIndex` per actively owned table partition (checks only ever see those)."""

    def __init__(self, root: Path, options: Callable[[], Options] = lambda: Options(raw_mode=True)) -> None:
        super().__init__(root, lambda path: DueIndex(path, options()))


class StreamClock:
    """`now` for SLA checks: wall time, or per-partition stream time.

    The event clock is the highest `occurred_at` seen on the partition: a partition's
    records come in a fixed order whatever the worker count or batching, so breach times
    replay identically; a global maximum would depend on how partitions interleave.
    """

    def __init__(self, kind: ClockKind, wall: Callable[[], float] = time.time) -> None:
        if kind not in ("wall", "event"):
            raise ValueError(f"unknown SLA clock {kind!r}: expected wall or event")
        self.kind = kind
        self._wall = wall
        self._stream: dict[int, int] = {}

    def observe(self, partition: int, occurred_at: int) -> bool:
        """Feed an applied event's business time; True when the stream time advanced."""
        if occurred_at > self._stream.get(partition, -_BIAS):
            self._stream[partition] = occurred_at
            return True
        return False

    def now(self, partition: int) -> int | None:
        """Epoch ms; None with the event clock before the partition's first event."""
        if self.kind == "wall":
            return int(self._wall() * 1000)
        return self._stream.get(partition)

    def seed(self, partition: int, stream_time: int | None) -> None:
        """Restore a partition's stream time (e.g. persisted with its states) on assignment."""
        if stream_time is not None:
            self.observe(partition, stream_time)

    def forget(self, partition: int) -> None:
        self._stream.pop(partition, None)
