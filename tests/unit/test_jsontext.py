"""tables.jsontext: the same text and errors as the generic `json.JSONEncoder` it stands for."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tables.jsontext import encoder

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.sampled_from(["ü", "\u2028", "\x1e", "\n", "😀", "\\", '"'])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    | st.tuples(inner, inner),
    max_leaves=30,
)
FORMS = [
    {"ensure_ascii": False, "allow_nan": False},  # the order and SKU states, cases
    {"ensure_ascii": False, "allow_nan": True},  # timeline entries
    {"ensure_ascii": True, "allow_nan": True},  # KPI sums (json.dumps with compact separators)
    {"ensure_ascii": True, "allow_nan": True, "separators": (", ", ": ")},  # json.dumps
]


def _outcome(encode, value):
    try:
        return encode(value)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("form", FORMS)
@settings(max_examples=300, deadline=None)
@given(value=VALUES)
def test_same_text_or_error_as_the_generic_encoder(form, value):
    generic = json.JSONEncoder(
        separators=form.get("separators", (",", ":")), ensure_ascii=form["ensure_ascii"],
        allow_nan=form["allow_nan"], check_circular=False,
    ).encode
    assert _outcome(encoder(**form), value) == _outcome(generic, value)


def test_json_dumps_forms():
    value = {"a": [1, 2.5, None, True, "é"], "b": {"c": []}}
    assert encoder(ensure_ascii=True, allow_nan=True)(value) == json.dumps(value, separators=(",", ":"))
    assert encoder(ensure_ascii=True, allow_nan=True, separators=(", ", ": "))(value) == json.dumps(value)


def test_errors_are_those_of_the_generic_encoder():
    strict = encoder(ensure_ascii=False, allow_nan=False)
    with pytest.raises(ValueError, match="Out of range float"):
        strict([math.nan])
    with pytest.raises(TypeError, match="not JSON serializable"):
        strict({"x": object()})
    assert strict([1]) == "[1]"  # still usable after an error
