"""Events into the engine's stream: numpy arrays of the page allocator's operations.

The kmem events tell two levels apart (replay/kernel/tracepoints.py): callers get and give
back blocks (`mm_page_alloc`, `mm_page_free`), and the buddy allocator hands blocks out
under the zone lock (`mm_page_alloc_zone_locked`) and takes pages back from the per-CPU
lists (`mm_page_pcpu_drain`). The stream keeps both, so the engine does its buddy work
where the kernel does it:

- ALLOC: a caller's allocation (failed ones too: `failed`);
- FREE_PCP / FREE_BUDDY: a caller's free, onto a per-CPU list (orders the traced kernel
  keeps there, replay/kernel/orders.py) or straight to the buddy lists. A pcp-order free
  whose page next leaves the buddy allocator (`mm_page_alloc_zone_locked`) without a drain
  in between went straight to the buddy lists (free_one_page when the per-CPU list is
  locked or the pageblock isolated): it is FREE_BUDDY;
- TAKE: a block leaves the buddy lists (to a per-CPU list or straight to a caller);
- DRAIN: a page leaves a per-CPU list for the buddy lists;
- ONLINE: memory onlined during the trace, freed into the buddy lists (set by
  `world.build_world`).

Traces without the two buddy-level events (only alloc/free recorded) cannot show the
per-CPU layer: every free then goes to the buddy lists and every allocation comes from
them (`Stream.pcp_traced` False), as the report says.
`mm_page_free_batched` repeats `mm_page_free` for list frees since Linux 2.6.34: it ends an
allocation only where no `mm_page_free` of that page came since the allocation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.errors import InputError
from ingest.schema import (
    MM_PAGE_ALLOC,
    MM_PAGE_ALLOC_EXTFRAG,
    MM_PAGE_ALLOC_ZONE_LOCKED,
    MM_PAGE_FREE,
    MM_PAGE_FREE_BATCHED,
    MM_PAGE_PCPU_DRAIN,
)
from replay.dataset import EVENTS_FILE
from replay.kernel import gfp, migratetypes, orders, pagestate, tracepoints
from replay.kernel.release import KernelRelease
from replay.kernel.zones import ZONE_NORMAL

ALLOC, FREE_PCP, FREE_BUDDY, TAKE, DRAIN, ONLINE = range(6)
KINDS = ("alloc", "free_pcp", "free_buddy", "take", "drain", "online")
RAW_FREE, RAW_BATCHED, _DROP = 10, 11, -1  # mm_page_free, mm_page_free_batched

_EVENT_KIND = {MM_PAGE_ALLOC: ALLOC, MM_PAGE_FREE: RAW_FREE,
               MM_PAGE_FREE_BATCHED: RAW_BATCHED, MM_PAGE_ALLOC_ZONE_LOCKED: TAKE,
               MM_PAGE_PCPU_DRAIN: DRAIN}


@dataclass(frozen=True)
class TracedFallbacks:
    """The trace's `mm_page_alloc_extfrag` events: where the kernel took a block from
    another migratetype's free lists (a claim or a steal), and the type the block's
    pageblock had until then (`fallback_migratetype`, engine numbering; -1 unknown)."""

    row: np.ndarray  # int64: row in events.parquet
    pfn: np.ndarray  # int64: the page handed out
    fallback_order: np.ndarray  # int64: order of the block taken from the other list
    fallback_mt: np.ndarray  # int64

    @staticmethod
    def none() -> TracedFallbacks:
        empty = np.zeros(0, np.int64)
        return TracedFallbacks(empty, empty, empty, empty)

    @staticmethod
    def concat(parts: list[TracedFallbacks]) -> TracedFallbacks:
        return TracedFallbacks(*(np.concatenate(x) for x in zip(
            *((f.row, f.pfn, f.fallback_order, f.fallback_mt)
              for f in [TracedFallbacks.none(), *parts]))))


@dataclass(frozen=True)
class Stream:
    """The engine's input: one entry per operation, in trace order."""

    kind: np.ndarray  # int8: ALLOC ... ONLINE
    pfn: np.ndarray  # int64: head pfn, -1 for a failed allocation
    order: np.ndarray  # int64
    migratetype: np.ndarray  # int64, engine numbering 0..2
    zone_type: np.ndarray  # int64, preferred zone type (allocations)
    pclass: np.ndarray  # uint8, replay.kernel.pagestate class of the pages (allocations)
    folio: np.ndarray  # bool: a compound allocation (__GFP_COMP: a folio, migrated whole)
    ts_ns: np.ndarray  # int64
    row: np.ndarray  # int64: row in events.parquet
    extfrag: int  # mm_page_alloc_extfrag events in the trace
    batched_ignored: int  # batched frees that repeated an mm_page_free
    unplaceable: int  # events naming a page only by its struct page pointer
    events: int  # rows of events.parquet
    pcp_traced: bool  # the buddy-level events (zone_locked, pcpu_drain) are in the trace
    release: KernelRelease | None = None
    fallbacks: TracedFallbacks = field(default_factory=TracedFallbacks.none)

    @property
    def max_pfn(self) -> int:
        ok = self.pfn >= 0
        if not ok.any():
            return 0
        return int((self.pfn[ok] + (np.int64(1) << self.order[ok])).max())

    @property
    def failed(self) -> np.ndarray:
        """Per entry: an allocation the kernel failed."""
        return (self.kind == ALLOC) & (self.pfn < 0)


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[list, np.ndarray]:
    """(dictionary values, index per row); a null row indexes one past the last value."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    return (arr.dictionary.to_pylist(),
            arr.indices.fill_null(len(arr.dictionary)).to_numpy(zero_copy_only=False))


def _per_value(values: list, fn, default: int) -> np.ndarray:
    """fn of each distinct dictionary value, then `default` for null rows (see `_codes`)."""
    return np.array([fn(v) for v in values] + [default], dtype=np.int64)


def _ints(table: pa.Table | pa.RecordBatch, name: str, null: int) -> np.ndarray:
    return table.column(name).fill_null(null).to_numpy(zero_copy_only=False).astype(
        np.int64, copy=False)


#: Rows of events.parquet decoded at a time: the temporaries of one batch, not of the
#: whole trace, add to the loader's peak memory.
BATCH_ROWS = 1 << 18

_COLUMNS = ["event", "pfn", "page", "order", "migratetype", "gfp_flags", "ts_ns",
            "fallback_order", "fallback_migratetype"]
#: dtypes of the entries `_decode` returns (build_stream's arguments, in order)
_ENTRY_DTYPES = (np.int8, np.int64, np.int64, np.int64, np.int64, np.uint8, np.bool_,
                 np.int64, np.int64)


@dataclass(frozen=True)
class _Part:
    """One batch of rows as stream entries (the kept rows) and its counts."""

    entries: tuple[np.ndarray, ...]  # kind, pfn, order, mt, zone, pclass, folio, ts, row
    fallbacks: TracedFallbacks
    extfrag: int
    unplaceable: int


def load_stream(dataset: Path, release: KernelRelease | None,
                enabled: frozenset[str] = frozenset()) -> Stream:
    """Read `DATASET/events.parquet` into a `Stream`, with `release`'s rules; `enabled`
    names the events the recording enabled, where known (`replay.dataset.recorded_events`).
    Rows are decoded BATCH_ROWS at a time into arrays of the whole trace's length."""
    path = Path(dataset) / EVENTS_FILE
    try:
        pf = pq.ParquetFile(path)
        total = pf.metadata.num_rows
        out = [np.empty(total, t) for t in _ENTRY_DTYPES]
        fallbacks: list[TracedFallbacks] = []
        rows = kept = extfrag = unplaceable = 0
        for batch in pf.iter_batches(BATCH_ROWS, columns=_COLUMNS):
            part = _decode(batch, rows, release)
            n = len(part.entries[0])
            for whole, piece in zip(out, part.entries):
                whole[kept:kept + n] = piece
            kept += n
            rows += batch.num_rows
            fallbacks.append(part.fallbacks)
            extfrag += part.extfrag
            unplaceable += part.unplaceable
    except (OSError, pa.ArrowInvalid) as e:
        raise InputError(path, f"unreadable events: {e}") from None
    return build_stream(*(x[:kept] for x in out), release, extfrag=extfrag,
                        unplaceable=unplaceable, events=rows,
                        fallbacks=TracedFallbacks.concat(fallbacks),
                        drains_enabled=MM_PAGE_PCPU_DRAIN in enabled)


def _decode(table: pa.RecordBatch, offset: int, release: KernelRelease | None) -> _Part:
    """One batch of events.parquet rows (the first at row `offset`) as stream entries."""
    names, ecode = _codes(table.column("event"))
    kind = _per_value(names, lambda x: _EVENT_KIND.get(x, _DROP), _DROP).astype(np.int8)[ecode]
    is_extfrag = _per_value(names, lambda x: x == MM_PAGE_ALLOC_EXTFRAG, 0)[ecode] == 1
    pfn_col, page_col = table.column("pfn"), table.column("page")
    failed = tracepoints.allocation_failed(pfn_col, page_col) & (kind == ALLOC)
    unplaced = tracepoints.unplaceable(pfn_col, page_col) & (kind != _DROP)
    pfn = _ints(table, "pfn", -1)
    sel = np.flatnonzero((kind != _DROP) & ~unplaced & ((pfn >= 0) | failed))
    order = np.clip(_ints(table, "order", 0)[sel], 0, orders.MAX_ORDER_LIMIT)
    gnames, gidx = _codes(table.column("gfp_flags"))
    gidx = gidx[sel]
    traced_mt = migratetypes.to_engine(_ints(table, "migratetype", -1)[sel], release)
    derived_mt = _per_value(gnames, gfp.migratetype, migratetypes.UNMOVABLE)[gidx]
    mt = np.where(traced_mt >= 0, traced_mt, np.where(kind[sel] == ALLOC, derived_mt,
                                                       migratetypes.UNMOVABLE))
    zone = _per_value(gnames, gfp.zone_type, ZONE_NORMAL)[gidx]
    # the class depends on (gfp names, migratetype): classify the few distinct pairs
    gnames = gnames + [None]
    key = gidx.astype(np.int64) * migratetypes.PCPTYPES + mt
    present = np.zeros(len(gnames) * migratetypes.PCPTYPES, bool)
    present[key] = True  # a table over the few (gfp, migratetype) pairs: no sort
    cls_of = np.zeros(len(present), np.uint8)
    for k in np.flatnonzero(present):
        cls_of[k] = pagestate.request_class(gnames[k // migratetypes.PCPTYPES],
                                            int(k % migratetypes.PCPTYPES))
    folio = _per_value(gnames[:-1], lambda g: gfp.has(g, gfp.COMP_NAMES), 0)[gidx] == 1
    ef = np.flatnonzero(is_extfrag & (pfn >= 0))
    fallbacks = TracedFallbacks(
        ef.astype(np.int64) + offset, pfn[ef],
        np.clip(_ints(table, "fallback_order", 0)[ef], 0, orders.MAX_ORDER_LIMIT),
        migratetypes.to_engine(_ints(table, "fallback_migratetype", -1)[ef], release))
    entries = (kind[sel], np.where(failed[sel], -1, pfn[sel]), order, mt, zone, cls_of[key],
               folio, _ints(table, "ts_ns", 0)[sel], sel.astype(np.int64) + offset)
    return _Part(entries, fallbacks, int(is_extfrag.sum()), int(unplaced.sum()))


def build_stream(kind: np.ndarray, pfn: np.ndarray, order: np.ndarray, mt: np.ndarray,
                 zone: np.ndarray, pclass: np.ndarray, folio: np.ndarray, ts: np.ndarray,
                 row: np.ndarray,
                 release: KernelRelease | None, extfrag: int = 0, unplaceable: int = 0,
                 events: int | None = None, fallbacks: TracedFallbacks | None = None,
                 drains_enabled: bool = False) -> Stream:
    """A Stream from event-level arrays (kind ALLOC, TAKE, DRAIN or the raw free kinds
    `RAW_FREE` / `RAW_BATCHED`): batched frees resolved, frees sent to a per-CPU list or
    the buddy lists by `release`'s rules. The per-CPU layer is traced when both buddy-level
    events are there, or zone_locked is and the recording enabled `mm_page_pcpu_drain`
    (a short trace may see no drain at all)."""
    kind = kind.astype(np.int8).copy()
    pcp_traced = bool((kind == TAKE).any() and (drains_enabled or (kind == DRAIN).any()))
    npages = int((pfn + (np.int64(1) << order)).max()) + 1 if len(pfn) else 1
    mask = orders.pcp_orders_mask(release) if pcp_traced else 0
    ignored = _resolve(kind, pfn, order, npages, mask)
    if not pcp_traced:  # without the buddy-level events, the pcp layer is invisible
        kind[(kind == TAKE) | (kind == DRAIN)] = _DROP
    out = kind != _DROP
    return Stream(
        kind=kind[out], pfn=_kept(pfn, out, np.int64), order=_kept(order, out, np.int64),
        migratetype=_kept(mt, out, np.int64), zone_type=_kept(zone, out, np.int64),
        pclass=_kept(pclass, out, np.uint8), folio=_kept(folio, out, np.bool_),
        ts_ns=ts[out], row=row[out],
        extfrag=extfrag, batched_ignored=ignored, unplaceable=unplaceable,
        events=len(kind) if events is None else events, pcp_traced=pcp_traced,
        release=release, fallbacks=fallbacks or TracedFallbacks.none())


def _kept(values: np.ndarray, out: np.ndarray, dtype: type) -> np.ndarray:
    """values[out] as `dtype`, converted in one copy."""
    return values[out].astype(dtype, copy=False)


@numba.njit(cache=True)
def _resolve(kind, pfn, order, npages, pcp_mask):
    """Batched frees into frees or drops; frees into FREE_PCP or FREE_BUDDY (in place).

    Forward: a batched free ends an allocation only when no `mm_page_free` of the page came
    since the page's last allocation. Backward: a free of a pcp order (bit set in
    `pcp_mask`) went to a per-CPU list unless the next event touching its head page is a
    TAKE (the buddy allocator handed it out again without a drain). Returns the batched
    frees dropped.
    """
    freed = np.zeros(npages, np.uint8)
    ignored = 0
    for i in range(len(kind)):
        p = pfn[i]
        k = kind[i]
        if p < 0 or not (k == ALLOC or k == RAW_FREE or k == RAW_BATCHED):
            continue
        n = np.int64(1) << order[i]
        if k == ALLOC:
            freed[p:p + n] = 0
        elif k == RAW_FREE:
            freed[p:p + n] = 1
        elif freed[p]:
            ignored += 1
            kind[i] = _DROP
        else:
            kind[i] = RAW_FREE
            freed[p:p + n] = 1
    nxt = np.full(npages, -1, np.int8)
    for i in range(len(kind) - 1, -1, -1):
        p = pfn[i]
        k = kind[i]
        if p < 0 or k == _DROP:
            continue
        if k == RAW_FREE:
            to_pcp = (pcp_mask >> order[i]) & 1 and nxt[p] != TAKE
            kind[i] = FREE_PCP if to_pcp else FREE_BUDDY
        n = np.int64(1) << order[i]
        nxt[p:p + n] = kind[i]
    return ignored
