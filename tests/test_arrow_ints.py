"""Integer Arrow columns read from their buffers (`ingest/arrow_ints.py`) against
pyarrow's own conversions, on sliced and chunked arrays with nulls."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.arrow_ints import filled_ints, is_valid, valid_values

_VALUES = st.lists(st.one_of(st.none(), st.integers(-2**40, 2**40)), max_size=40)


@given(_VALUES, _VALUES, st.integers(0, 5), st.sampled_from([pa.int64(), pa.int32()]))
def test_buffers_read_as_pyarrow_converts(a, b, cut, typ):
    """Every function agrees with pyarrow.compute on a chunked array whose first chunk is
    sliced (a buffer offset), in 32- and 64-bit integers."""
    clip = (lambda v: None if v is None else v % 2**31) if typ == pa.int32() else (lambda v: v)
    first = pa.array([clip(v) for v in a], typ).slice(min(cut, len(a)))
    col = pa.chunked_array([first, pa.array([clip(v) for v in b], typ)], typ)
    assert filled_ints(col, -7).tolist() == pc.fill_null(col, -7).to_pylist()
    assert is_valid(col).tolist() == pc.is_valid(col).to_pylist()
    assert valid_values(col).tolist() == pc.drop_null(col).to_pylist()
    assert filled_ints(col, -7).dtype == np.int64


def test_booleans_are_refused():
    """Booleans are packed bits: reading them as bytes would be wrong, so it is refused."""
    with pytest.raises(TypeError):
        filled_ints(pa.array([True, None]), 0)
