"""Compact JSON text of the stored forms, with the encoder made once.

`json.JSONEncoder.encode` builds a new C encoder object on every call (and a closure for
floats): for the small values written per event and per commit (an order state, a line of a
SKU, a timeline entry, a group of KPI sums) that setup is about a third of the call. `encoder`
builds it once and returns a function giving the same text as `JSONEncoder(...).encode`.

The values must be trees (no object containing itself): the circular-reference check is off,
as it is in the stored forms' encoders already.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii
from typing import Any


def encoder(
    *, ensure_ascii: bool, allow_nan: bool, separators: tuple[str, str] = (",", ":")
) -> Callable[[Any], str]:
    """`json.JSONEncoder(separators=separators, ensure_ascii=ensure_ascii, allow_nan=allow_nan,
    check_circular=False).encode`, the same text (and the same errors for what JSON cannot
    hold), cheaper per call."""
    generic = json.JSONEncoder(
        separators=separators, ensure_ascii=ensure_ascii, check_circular=False, allow_nan=allow_nan
    )
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return generic.encode
    item_separator, key_separator = separators
    make = c_make_encoder(
        None, generic.default, encode_basestring_ascii if ensure_ascii else encode_basestring,
        None, key_separator, item_separator, False, False, allow_nan,
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(make(value, 0))

    return encode
