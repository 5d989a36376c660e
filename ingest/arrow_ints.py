"""Integer Arrow columns as numpy arrays, read straight from their buffers.

pyarrow.compute costs about 0.2 s to import, and `Array.to_numpy` and `fill_null` (through
`pa.scalar`) import pandas, another 0.2 s: every `replay ingest` and every replay's
stream load would pay both for a few conversions.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """(every slot's value, whether it is valid or None when no slot is null)."""
    if not pa.types.is_integer(arr.type):  # booleans are bits, not bytes
        raise TypeError(f"{arr.type} is not an integer type")
    validity, data = arr.buffers()[:2]
    end = arr.offset + len(arr)
    values = np.frombuffer(data, arr.type.to_pandas_dtype(), end)[arr.offset:]
    if arr.null_count == 0:
        return values, None
    valid = np.unpackbits(np.frombuffer(validity, np.uint8), count=end, bitorder="little")
    return values, valid[arr.offset:].astype(bool)


def _array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def valid_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The non-null values of an integer column."""
    values, valid = _buffers(_array(column))
    return values if valid is None else values[valid]


def is_valid(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per row of an integer column, whether it holds a value."""
    values, valid = _buffers(_array(column))
    return np.ones(len(values), bool) if valid is None else valid


def filled_ints(column: pa.Array | pa.ChunkedArray, fill: int) -> np.ndarray:
    """An integer column as int64, its nulls replaced by `fill`."""
    values, valid = _buffers(_array(column))
    out = values.astype(np.int64)
    if valid is not None:
        out[~valid] = fill
    return out
