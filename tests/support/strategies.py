"""Hypothesis strategies shared by the wire-format tests."""

from __future__ import annotations

from hypothesis import strategies as st

#: JSON values as payloads hold them: scalars across the wire codec's integer range, and
#: small nested lists and objects.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
