"""The canonical event schema: the one place where the dataset's columns are defined.

Every reader in `ingest/` yields Arrow record batches of `EVENTS` (less `seq`, which the
dataset writer assigns); the query layer and the engine read nothing else. Column names
are the tracepoints' own field names (include/trace/events/kmem.h).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

#: Bumped whenever a column is added, removed or changes meaning.
SCHEMA_VERSION = 1

#: Canonical kmem page events, in the order the kernel declares them.
EVENT_NAMES = (
    "mm_page_alloc",
    "mm_page_free",
    "mm_page_free_batched",
    "mm_page_alloc_zone_locked",
    "mm_page_pcpu_drain",
    "mm_page_alloc_extfrag",
)
(MM_PAGE_ALLOC, MM_PAGE_FREE, MM_PAGE_FREE_BATCHED, MM_PAGE_ALLOC_ZONE_LOCKED,
 MM_PAGE_PCPU_DRAIN, MM_PAGE_ALLOC_EXTFRAG) = EVENT_NAMES

#: Old event names and the canonical names they became (Linux 3.3, "mm-tracepoint:
#: rename page-free events").
EVENT_ALIASES = {
    "mm_page_free_direct": "mm_page_free",
    "mm_pagevec_free": "mm_page_free_batched",
}


def canonical_event(name: str) -> str | None:
    """The canonical kmem page event for a (possibly old) event name, or None."""
    if name in EVENT_ALIASES:
        return EVENT_ALIASES[name]
    return name if name in EVENT_NAMES else None


# `context` holds the kernel's TRACE_FLAG_* bits of `common_flags` (kernel/trace/trace.h);
# text readers derive the same bits from the irq-flags column.
CONTEXT_IRQS_OFF = 0x01
CONTEXT_HARDIRQ = 0x08
CONTEXT_SOFTIRQ = 0x10
CONTEXT_NMI = 0x40
CONTEXT_BH_OFF = 0x80

_DICT = pa.dictionary(pa.int32(), pa.string())

EVENTS = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),  # global order in the trace, from 0
        pa.field("ts_ns", pa.int64()),  # trace clock in ns (raw counts for counter clocks)
        pa.field("cpu", pa.int32()),
        pa.field("pid", pa.int32()),  # thread id (common_pid)
        pa.field("comm", _DICT),
        pa.field("event", _DICT),  # canonical name, one of EVENT_NAMES
        pa.field("pfn", pa.int64()),  # null for a failed allocation or unknown
        pa.field("page", pa.uint64()),  # struct page pointer, only where no pfn was traced
        pa.field("order", pa.int16()),
        pa.field("gfp", pa.uint64()),  # raw gfp bits where known
        pa.field("gfp_flags", _DICT),  # names as the kernel prints them
        pa.field("migratetype", pa.int16()),
        pa.field("context", pa.uint8()),  # TRACE_FLAG_* bits (CONTEXT_*) where known
        pa.field("stack_id", pa.int64()),  # into stacks.parquet; null without callchains
        # mm_page_alloc_extfrag
        pa.field("alloc_order", pa.int16()),
        pa.field("fallback_order", pa.int16()),
        pa.field("alloc_migratetype", pa.int16()),
        pa.field("fallback_migratetype", pa.int16()),
        pa.field("change_ownership", pa.int8()),
        # mm_page_alloc_zone_locked (5.19+ as a field, earlier computed as order == 0)
        pa.field("percpu_refill", pa.int8()),
    ],
    metadata={"ingest.schema_version": str(SCHEMA_VERSION)},
)

#: What readers produce: every column but `seq`.
READER_EVENTS = pa.schema([f for f in EVENTS if f.name != "seq"])

STACKS = pa.schema(
    [
        pa.field("stack_id", pa.int64(), nullable=False),
        pa.field("depth", pa.int16(), nullable=False),  # 0 = innermost frame
        pa.field("context", _DICT),  # "kernel", "user", "guest_kernel", ...
        pa.field("addr", pa.uint64()),
        pa.field("symbol", _DICT),  # "function+0xoff" or null when unknown
        pa.field("dso", _DICT),
    ],
    metadata={"ingest.schema_version": str(SCHEMA_VERSION)},
)


def _column(field: pa.Field, values: object, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, type=field.type)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    else:
        # typed up front: a u64 address above 2^63 must not be guessed as int64
        typ = None if pa.types.is_dictionary(field.type) else field.type
        # a masked array implies numpy.ma is loaded; asking otherwise would import it (60 ms)
        if "numpy.ma" in sys.modules and isinstance(values, np.ma.MaskedArray):
            arr = pa.array(values.data, mask=np.ma.getmaskarray(values), type=typ)
        else:
            arr = pa.array(values, type=typ)
    if arr.type != field.type:
        if pa.types.is_dictionary(field.type) and not pa.types.is_dictionary(arr.type):
            arr = arr.cast(pa.string()).dictionary_encode()
            if arr.type != field.type:
                arr = arr.cast(field.type)
        else:
            arr = arr.cast(field.type)
    if len(arr) != n:
        raise ValueError(f"column {field.name} has {len(arr)} values, expected {n}")
    return arr


def event_batch(columns: Mapping[str, object], n: int) -> pa.RecordBatch:
    """A reader batch of `n` events from named columns; missing columns are null.

    Values may be Arrow arrays, numpy arrays (masked arrays for nulls) or lists.
    """
    unknown = set(columns) - set(READER_EVENTS.names)
    if unknown:
        raise ValueError(f"not in the event schema: {sorted(unknown)}")
    arrays = [_column(f, columns.get(f.name), n) for f in READER_EVENTS]
    return pa.RecordBatch.from_arrays(arrays, schema=READER_EVENTS)


def stack_batch(columns: Mapping[str, object], n: int) -> pa.RecordBatch:
    """A batch of stack frames from named columns; missing columns are null."""
    arrays = [_column(f, columns.get(f.name), n) for f in STACKS]
    return pa.RecordBatch.from_arrays(arrays, schema=STACKS)
