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

from ingest.arrow_ints import filled_ints
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


#: The stream's dtypes: compact, since its arrays are the engine's per-entry memory (22
#: bytes an entry). Pfns are 32-bit as the simulator's free lists are (buddy.py): the
#: engine indexes at most PFN_LIMIT pages (8 TiB of 4 KiB pages), `check_pfns` refuses more.
PFN, ORDER, MIGRATETYPE, ZONE_TYPE, TS = np.int32, np.int8, np.int8, np.int8, np.int64
PFN_LIMIT = int(np.iinfo(PFN).max)


def row_dtype(rows: int) -> type:
    """The dtype of row numbers into an events.parquet of `rows` rows (not used by
    compiled code, so it may depend on the size)."""
    return np.int32 if rows <= np.iinfo(np.int32).max else np.int64


def check_pfns(pfn: np.ndarray, order: np.ndarray, where: str) -> None:
    """Refuse blocks past PFN_LIMIT pages (InputError naming `where`)."""
    end = int(block_end(pfn, order))
    if end > PFN_LIMIT:
        raise InputError(where, f"pfn {end - 1:#x}: beyond the {PFN_LIMIT:,} pages the "
                         "engine indexes with 32-bit page numbers")


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
    pfn: np.ndarray  # PFN: head pfn, -1 for a failed allocation
    order: np.ndarray  # ORDER
    migratetype: np.ndarray  # MIGRATETYPE, engine numbering 0..2
    zone_type: np.ndarray  # ZONE_TYPE, preferred zone type (allocations)
    pclass: np.ndarray  # uint8, replay.kernel.pagestate class of the pages (allocations)
    folio: np.ndarray  # bool: a compound allocation (__GFP_COMP: a folio, migrated whole)
    ts_ns: np.ndarray  # TS
    row: np.ndarray  # row_dtype(events): row in events.parquet
    extfrag: int  # mm_page_alloc_extfrag events in the trace
    batched_ignored: int  # batched frees that repeated an mm_page_free
    unplaceable: int  # events naming a page only by its struct page pointer
    events: int  # rows of events.parquet
    pcp_traced: bool  # the buddy-level events (zone_locked, pcpu_drain) are in the trace
    release: KernelRelease | None = None
    fallbacks: TracedFallbacks = field(default_factory=TracedFallbacks.none)

    @property
    def max_pfn(self) -> int:
        """One past the last page a placed entry's block covers (0 without one)."""
        return int(block_end(self.pfn, self.order))

    @property
    def failed(self) -> np.ndarray:
        """Per entry: an allocation the kernel failed."""
        return (self.kind == ALLOC) & (self.pfn < 0)


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[list, np.ndarray]:
    """(dictionary values, index per row); a null row indexes one past the last value."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    return arr.dictionary.to_pylist(), filled_ints(arr.indices, len(arr.dictionary))


def _per_value(values: list, fn, default: int) -> np.ndarray:
    """fn of each distinct dictionary value, then `default` for null rows (see `_codes`)."""
    return np.array([fn(v) for v in values] + [default], dtype=np.int64)


def _ints(table: pa.Table | pa.RecordBatch, name: str, null: int) -> np.ndarray:
    return filled_ints(table.column(name), null)


#: Rows of events.parquet decoded at a time: the temporaries of one batch, not of the
#: whole trace, add to the loader's peak memory.
BATCH_ROWS = 1 << 18

_COLUMNS = ["event", "pfn", "page", "order", "migratetype", "gfp_flags", "ts_ns",
            "fallback_order", "fallback_migratetype"]


def entry_dtypes(rows: int) -> tuple[type, ...]:
    """The dtypes of a stream's entries of a trace of `rows` rows, in build_stream's order
    (kind, pfn, order, migratetype, zone type, class, folio, ts, row)."""
    return (np.int8, PFN, ORDER, MIGRATETYPE, ZONE_TYPE, np.uint8, np.bool_, TS,
            row_dtype(rows))


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
    Rows are decoded BATCH_ROWS at a time into arrays of the whole trace's length, in the
    stream's dtypes (their pages are touched only as entries fill them)."""
    path = Path(dataset) / EVENTS_FILE
    try:
        pf = pq.ParquetFile(path)
        total = pf.metadata.num_rows
        out = [np.empty(total, t) for t in entry_dtypes(total)]
        fallbacks: list[TracedFallbacks] = []
        rows = kept = extfrag = unplaceable = 0
        for batch in pf.iter_batches(BATCH_ROWS, columns=_COLUMNS):
            part = _decode(batch, rows, release)
            check_pfns(part.entries[1], part.entries[2], str(path))
            n = len(part.entries[0])
            for whole, piece in zip(out, part.entries):
                whole[kept:kept + n] = piece
            kept += n
            rows += batch.num_rows
            fallbacks.append(part.fallbacks)
            extfrag += part.extfrag
            unplaceable += part.unplaceable
            del part, batch
    except (OSError, pa.ArrowInvalid) as e:
        raise InputError(path, f"unreadable events: {e}") from None
    out = [x[:kept] for x in out]
    return _assemble(out, release, extfrag, unplaceable, rows,
                     TracedFallbacks.concat(fallbacks), MM_PAGE_PCPU_DRAIN in enabled)


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
    check_pfns(pfn, order, "stream")
    return _assemble([kind, pfn, order, mt, zone, pclass, folio, ts, row], release, extfrag,
                     unplaceable, len(kind) if events is None else events,
                     fallbacks or TracedFallbacks.none(), drains_enabled)


def _assemble(cols: list[np.ndarray], release: KernelRelease | None, extfrag: int,
              unplaceable: int, events: int, fallbacks: TracedFallbacks,
              drains_enabled: bool) -> Stream:
    """build_stream on the columns of `cols` (its order), which it replaces one at a time
    by the kept entries in the stream's dtypes: the caller's list, if it holds the only
    references, then holds one column twice at most, never the whole stream."""
    kind = cols[0] = np.array(cols[0], np.int8)  # a copy: _resolve rewrites it
    pfn, order = cols[1], cols[2]
    pcp_traced = bool((kind == TAKE).any() and (drains_enabled or (kind == DRAIN).any()))
    mask = orders.pcp_orders_mask(release) if pcp_traced else 0
    ignored = _resolve(kind, pfn, order, block_end(pfn, order) + 1, mask)
    if not pcp_traced:  # without the buddy-level events, the pcp layer is invisible
        kind[(kind == TAKE) | (kind == DRAIN)] = _DROP
    out = kind != _DROP
    every = bool(out.all())
    for i, dtype in enumerate(entry_dtypes(events)):
        cols[i] = (cols[i] if every else cols[i][out]).astype(dtype, copy=False)
    return Stream(*cols, extfrag=extfrag, batched_ignored=ignored, unplaceable=unplaceable,
                  events=events, pcp_traced=pcp_traced, release=release, fallbacks=fallbacks)


@numba.njit(cache=True)
def block_end(pfn, order):
    """The largest pfn + 2^order over the placed entries (pfn >= 0); 0 without one (a
    pass, not the temporaries of the expression)."""
    end = 0
    for i in range(len(pfn)):
        if pfn[i] >= 0:
            end = max(end, pfn[i] + (np.int64(1) << order[i]))
    return end


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
