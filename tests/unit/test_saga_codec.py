"""The allocation saga's binary records (streams/processors/saga.py): every message survives the round
trip, JSON written by earlier versions is still read, and any other bytes give a
SagaDecodeError (a dead letter), never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.processors import saga
from tables.allocation import AllocationRelease, AllocationRequest, AllocationResult, StockIssue

LONGS = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=40)


def messages() -> st.SearchStrategy:
    return st.one_of(
        st.builds(AllocationRequest, TEXT, TEXT, TEXT, st.none() | TEXT, LONGS, LONGS, LONGS, LONGS, TEXT),
        st.builds(AllocationRelease, TEXT, TEXT, TEXT, st.none() | TEXT, LONGS, LONGS, LONGS, TEXT),
        st.builds(StockIssue, TEXT, TEXT, TEXT, TEXT, LONGS, st.none() | TEXT, TEXT, LONGS, LONGS, TEXT),
        st.builds(
            AllocationResult, TEXT, TEXT, TEXT, st.none() | TEXT, LONGS, LONGS, st.none() | LONGS, LONGS, TEXT, LONGS
        ),
    )


@given(messages())
def test_round_trip(message) -> None:
    assert saga.decode(saga.encode(message)) == message


@given(messages())
def test_json_of_earlier_versions_is_read(message) -> None:
    assert saga.decode(json.dumps(message.to_dict()).encode()) == message


@given(messages(), st.data())
def test_damaged_records_are_decode_errors(message, data) -> None:
    encoded = saga.encode(message)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(saga.SagaDecodeError):
        saga.decode(encoded[:cut])  # truncated
    with pytest.raises(saga.SagaDecodeError):
        saga.decode(encoded + b"\x00")  # trailing bytes


@given(st.binary(max_size=120))
def test_any_bytes_decode_or_fail_cleanly(value) -> None:
    try:
        saga.decode(value)
    except saga.SagaDecodeError:
        pass


def test_clear_errors() -> None:
    with pytest.raises(saga.SagaDecodeError, match="unknown type byte 9"):
        saga.decode(b"\x09\x00")
    with pytest.raises(saga.SagaDecodeError, match="empty"):
        saga.decode(b"")
    bad_utf8 = saga.encode(AllocationRelease("o", "l", "s", None, 1, 2, 3, "e")).replace(b"\x01\x00\x00\x00o", b"\x01\x00\x00\x00\xff")
    with pytest.raises(saga.SagaDecodeError, match="corrupt AllocationRelease"):
        saga.decode(bad_utf8)
