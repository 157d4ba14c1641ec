"""Strategies and helpers shared by the property tests."""

from __future__ import annotations

import math

from hypothesis import settings
from hypothesis import strategies as st

from coatcheck import ids

URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def examples(n: int) -> settings:
    """``n`` examples under the default profile, scaled by the loaded one (see conftest)."""
    return settings(max_examples=max(1, n * settings().max_examples // 100))


def well_formed_id(id_bytes: int = 32) -> st.SearchStrategy[str]:
    """Any string with an id's length and alphabet, not only what new_id() draws."""
    n = ids.id_length(id_bytes)
    return st.text(alphabet=URLSAFE, min_size=n, max_size=n)


# Header text: anything, with the characters that matter to a cookie parser made likely.
nasty_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(';="\\ \t\r\n\x00,\x7f\u2028\ufeff')),
        st.characters(),
    ),
    max_size=200,
)

# --- JSON-able session data -----------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=["Cs"]))  # no lone surrogates
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # orjson's range
    st.integers(min_value=-(10**300), max_value=10**300),  # the big-int (stdlib json) path
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_text, children, max_size=5),
    ),
    max_leaves=30,
)
session_data = st.dictionaries(_text, json_values, max_size=8)


def same(a: object, b: object) -> bool:
    """Equal with exact types (1, 1.0 and True differ here), -0.0 apart from 0.0, and the
    same key order, which the lazy-write byte comparison depends on."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        assert isinstance(b, float)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b
