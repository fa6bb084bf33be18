"""The case listing's RocksDB index (streams/processors/case_index.py): a page cut from it is
the page of every case, and it survives a reopen only as far as its covered mark says."""

from __future__ import annotations

import tempfile
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.processors.case_index import CaseIndex, CaseIndexes
from tables import cases as cs
from tests.unit.test_cases import QUERY_PARAMS, a_case, a_population


@given(a_population(), st.data(), QUERY_PARAMS, st.integers(1, 7))
@settings(max_examples=100, deadline=None)
def test_a_page_cut_from_the_index_is_the_page_of_every_case(cases, data, params, limit):
    """The agent pages through the index (loading only what it selects); the page, and every
    page after it, must be what filtering every case gives. Cases change state after indexing."""
    with tempfile.TemporaryDirectory() as tmp:
        index = CaseIndex(f"{tmp}/p0")
        by_ref = {}
        for i, case in enumerate(cases):  # changed as they happen, or read in from storage
            ref = case.case_id.encode()
            if i % 2:
                index.put(case, ref)
            else:
                index.add_stored(case.to_list(), ref)
            by_ref[ref] = case
        for case in data.draw(st.lists(st.sampled_from(cases), max_size=5)) if cases else []:
            changed = replace(case, state=cs.CaseState.RESOLVED, version=case.version + 1)
            index.put(changed, changed.case_id.encode())
            by_ref[changed.case_id.encode()] = changed
        cursor = None
        for _ in range(len(cases) + 2):
            q = cs.parse_query({**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})})
            from_index = cs.page_of([by_ref[ref] for ref in index.select(q)], q)
            assert from_index == cs.page_of(by_ref.values(), q)
            cursor = from_index.next_cursor
            if cursor is None:
                break
        assert len(index) == len(by_ref)
        index.close()


def test_a_case_read_from_storage_does_not_undo_a_change_indexed_meanwhile(tmp_path):
    """The agent reads a partition's stored cases into its index in slices while cases change:
    a stored (older) copy read after a change must not replace it."""
    index = CaseIndex(tmp_path / "p0")
    stored = a_case(case_id="o.SO-1.SLA-SHIPMENT", order_id="SO-1", opened_at=5)
    index.put(replace(stored, state=cs.CaseState.RESOLVED, version=2), b"k")
    index.add_stored(stored.to_list(), b"k")
    index.add_stored(a_case(case_id="o.SO-2.SLA-SHIPMENT", order_id="SO-2", opened_at=1).to_list(), b"k2")
    open_only = cs.parse_query({"state": "OPEN"})
    assert index.select(open_only) == [b"k2"]
    assert index.select(cs.parse_query({})) == [b"k2", b"k"]
    assert index.counts == {("RESOLVED", "HIGH"): 1, ("OPEN", "HIGH"): 1}


def test_an_index_reopened_keeps_its_cases_and_counts_and_is_trusted_only_while_marked(tmp_path):
    """A clean restart reads nothing in: the index on disk, its counts and its covered mark are
    what the last commit left. Any write after the mark removes it, so an index that ran ahead
    of the committed cases (a crash) is rebuilt; `reset` empties it for that."""
    indexes = CaseIndexes(tmp_path)
    index = indexes.open(3)
    index.put(a_case(case_id="o.SO-1.SLA-SHIPMENT", order_id="SO-1", opened_at=5), b"k1")
    index.set_covered_offset(41)
    indexes.close_all()

    index = indexes.open(3)
    assert (index.covered_offset(), index.marked, len(index)) == (41, True, 1)
    assert index.select(cs.parse_query({"order_id": "SO-1"})) == [b"k1"]
    index.put(a_case(case_id="o.SO-2.SLA-SHIPMENT", order_id="SO-2", opened_at=6), b"k2")
    assert (index.covered_offset(), index.marked) == (None, False)
    indexes.close_all()

    index = indexes.open(3)
    assert index.covered_offset() is None and index.counts == {("OPEN", "HIGH"): 2}
    assert len(indexes.reset(3)) == 0
    indexes.close_all()
