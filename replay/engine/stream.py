"""Events into the engine's stream: numpy arrays of allocations and frees, nothing else.

Only `mm_page_alloc` (the allocator's answer to a caller, failed ones included) and the
frees end up in the stream; `mm_page_alloc_zone_locked` / `mm_page_pcpu_drain` move pages
between the buddy and the per-CPU lists, and pages on per-CPU lists count as free (a
contiguous allocator drains them, as `alloc_contig_range()` does), so both are dropped.
`mm_page_free_batched` repeats `mm_page_free` for list frees since Linux 2.6.34: it ends an
allocation only where no `mm_page_free` of that page came since the allocation (kernels
before 2.6.34 report the two disjointly, FORMATS.md §8).

Per allocation, the stream carries the migratetype (the traced field, else derived from
the gfp names), the preferred zone type from the gfp flags, and the page class that
decides what memarea may do with the pages (see `page_class`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from replay.dataset import EVENTS_FILE
from ingest.errors import InputError

ALLOC = 0
FREE = 1
BATCHED_FREE = 2  # only before `_resolve_batched`

# Migrate types, 4.4+ numbering (include/linux/mmzone.h).
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_TYPES = 3  # MIGRATE_PCPTYPES: the types with free lists in the model

# Page classes: what a contiguous allocator may do with an allocated page.
FREE_PAGE = 0
RECLAIMABLE_PAGE = 1  # may be dropped (reclaimable slab, clean page cache)
MOVABLE_PAGE = 2  # may be migrated (needs a free page elsewhere)
PINNED_PAGE = 3  # neither (unmovable, or unknown)

_ZONE_DMA, _ZONE_DMA32, _ZONE_NORMAL, _ZONE_MOVABLE = 0, 1, 2, 4


def _tokens(gfp_flags: str | None) -> set[str]:
    return set(gfp_flags.split("|")) if gfp_flags else set()


def _movable(names: set[str]) -> bool:
    """__GFP_MOVABLE set: any *MOVABLE name, or GFP_TRANSHUGE* (which include it)."""
    return any("MOVABLE" in n or n.startswith("GFP_TRANSHUGE") for n in names)


def gfp_migratetype(gfp_flags: str | None) -> int:
    """gfp_migratetype() from the printed flag names (used when the trace lacks the field)."""
    names = _tokens(gfp_flags)
    if _movable(names):
        return MIGRATE_MOVABLE
    if "__GFP_RECLAIMABLE" in names or "GFP_RECLAIMABLE" in names:
        return MIGRATE_RECLAIMABLE
    return MIGRATE_UNMOVABLE


def gfp_zone(gfp_flags: str | None) -> int:
    """gfp_zone(): the highest zone type the request may use (its preferred zone)."""
    names = _tokens(gfp_flags)
    if names & {"__GFP_DMA", "GFP_DMA"}:
        return _ZONE_DMA
    if names & {"__GFP_DMA32", "GFP_DMA32"}:
        return _ZONE_DMA32
    movable = _movable(names)
    highmem = any("HIGHMEM" in n or n.startswith(("GFP_HIGHUSER", "GFP_TRANSHUGE"))
                  for n in names)
    return _ZONE_MOVABLE if movable and highmem else _ZONE_NORMAL


def page_class(gfp_flags: str | None, migratetype: int) -> int:
    """What memarea may do with the pages of an allocation, decided from gfp and migratetype.

    - RECLAIMABLE: migratetype RECLAIMABLE (slab caches with shrinkers: dentries, inodes),
      and *page cache*: MOVABLE allocations carrying `__GFP_WRITE` (page cache written
      through write_begin) or `__GFP_NORETRY` (readahead's readahead_gfp_mask), without
      `__GFP_ZERO` (anonymous faults) and not `GFP_TRANSHUGE*` (anonymous THP).
    - MOVABLE: every other MOVABLE allocation (anonymous pages, THP, hugetlb pool pages,
      plain filemap allocations that cannot be told from CoW copies): migratable.
    - PINNED: the rest.
    """
    names = _tokens(gfp_flags)
    if migratetype == MIGRATE_RECLAIMABLE:
        return RECLAIMABLE_PAGE
    if migratetype != MIGRATE_MOVABLE:
        return PINNED_PAGE
    page_cache = (
        ("__GFP_WRITE" in names or "__GFP_NORETRY" in names)
        and "__GFP_ZERO" not in names
        and not any(n.startswith("GFP_TRANSHUGE") for n in names)
    )
    return RECLAIMABLE_PAGE if page_cache else MOVABLE_PAGE


@dataclass(frozen=True)
class Stream:
    """The engine's input: one entry per allocation or free, in trace order."""

    kind: np.ndarray  # int8: ALLOC or FREE
    pfn: np.ndarray  # int64: head pfn, -1 for a failed allocation
    order: np.ndarray  # int64
    migratetype: np.ndarray  # int64, 0..2 (allocations)
    zone_type: np.ndarray  # int64, preferred zone type (allocations)
    pclass: np.ndarray  # uint8, page class (allocations)
    ts_ns: np.ndarray  # int64
    row: np.ndarray  # int64: row in events.parquet (for the request columns)
    extfrag: int  # mm_page_alloc_extfrag events in the trace
    batched_ignored: int  # batched frees that repeated an mm_page_free
    events: int  # rows of events.parquet

    @property
    def max_pfn(self) -> int:
        return int(self.pfn.max()) + (1 << int(self.order.max())) if len(self.pfn) else 0


def _codes(column: pa.ChunkedArray) -> tuple[list, np.ndarray]:
    """(dictionary values, index per row) of a dictionary column; a null row indexes one
    past the last value, where `_per_value` puts its default."""
    arr = column.combine_chunks()
    return (arr.dictionary.to_pylist(),
            arr.indices.fill_null(len(arr.dictionary)).to_numpy(zero_copy_only=False))


def _per_value(values: list, fn, default: int) -> np.ndarray:
    """fn of each distinct dictionary value, then `default` for null rows (see `_codes`)."""
    return np.array([fn(v) for v in values] + [default], dtype=np.int64)


def _ints(table: pa.Table, name: str, null: int) -> np.ndarray:
    return table.column(name).fill_null(null).to_numpy(zero_copy_only=False).astype(np.int64)


def load_stream(dataset: Path) -> Stream:
    """Read the columns the engine needs from `DATASET/events.parquet` into a `Stream`."""
    path = Path(dataset) / EVENTS_FILE
    cols = ["event", "pfn", "order", "migratetype", "gfp_flags", "ts_ns"]
    try:
        table = pq.read_table(path, columns=cols)
    except (OSError, pa.ArrowInvalid) as e:
        raise InputError(path, f"unreadable events: {e}") from None
    n = table.num_rows
    names, ecode = _codes(table.column("event"))
    code = {"mm_page_alloc": ALLOC, "mm_page_free": FREE, "mm_page_free_batched": BATCHED_FREE}
    ev = _per_value(names, lambda x: code.get(x, -1), -1).astype(np.int8)[ecode]
    extfrag = int(_per_value(names, lambda x: x == "mm_page_alloc_extfrag", 0)[ecode].sum())
    keep = np.flatnonzero(ev >= 0)
    pfn = _ints(table, "pfn", -1)
    order = _ints(table, "order", 0)
    ts = _ints(table, "ts_ns", 0)
    traced_mt = _ints(table, "migratetype", -1)
    gnames, gidx = _codes(table.column("gfp_flags"))
    derived_mt = _per_value(gnames, gfp_migratetype, MIGRATE_UNMOVABLE)[gidx]
    zone = _per_value(gnames, gfp_zone, _ZONE_NORMAL)[gidx]
    mt = np.where((traced_mt >= 0) & (traced_mt < MIGRATE_TYPES), traced_mt, derived_mt)
    mt = np.where(traced_mt >= MIGRATE_TYPES, MIGRATE_UNMOVABLE, mt).astype(np.int64)
    # page_class depends on (gfp names, migratetype): classify the few distinct pairs
    gnames = gnames + [None]
    key = gidx.astype(np.int64) * MIGRATE_TYPES + mt
    uniq, inv = np.unique(key, return_inverse=True)
    cls_u = np.array([page_class(gnames[k // MIGRATE_TYPES], int(k % MIGRATE_TYPES))
                      for k in uniq], dtype=np.uint8)
    pclass = cls_u[inv]
    kind = ev[keep]
    pfn, order, mt, zone, pclass, ts = (a[keep] for a in (pfn, order, mt, zone, pclass, ts))
    # a free without a pfn names nothing; drop it (an allocation without one failed)
    valid = (kind == ALLOC) | (pfn >= 0)
    if not valid.all():
        keep, kind, pfn, order, mt, zone, pclass, ts = (
            a[valid] for a in (keep, kind, pfn, order, mt, zone, pclass, ts))
    npages = int((pfn + (np.int64(1) << order)).max()) + 1 if len(pfn) else 1
    ignored = _resolve_batched(kind, pfn, order, npages)
    sel = kind != BATCHED_FREE
    return Stream(
        kind=kind[sel], pfn=pfn[sel], order=order[sel], migratetype=mt[sel],
        zone_type=zone[sel], pclass=pclass[sel].astype(np.uint8), ts_ns=ts[sel],
        row=keep[sel].astype(np.int64), extfrag=extfrag, batched_ignored=ignored, events=n,
    )


@numba.njit(cache=True)
def _resolve_batched(kind, pfn, order, npages):
    """Turn each batched free into a free where it ends an allocation; count the others.

    A batched free ends nothing when an `mm_page_free` of the page came since the page's
    last allocation; those stay BATCHED_FREE (to be dropped) and are counted.
    """
    freed = np.zeros(npages, np.uint8)  # 1: mm_page_free seen since the last allocation
    ignored = 0
    for i in range(len(kind)):
        p = pfn[i]
        if p < 0:
            continue
        n = np.int64(1) << order[i]
        if kind[i] == ALLOC:
            freed[p:p + n] = 0
        elif kind[i] == FREE:
            freed[p:p + n] = 1
        elif freed[p]:
            ignored += 1
        else:
            kind[i] = FREE
            freed[p:p + n] = 1
    return ignored
