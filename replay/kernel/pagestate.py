"""What a contiguous allocator may do with a page, from what the kernel knows of it.

alloc_contig_range() (mm/page_alloc.c) isolates the range's pageblocks
(mm/page_isolation.c start_isolate_page_range / has_unmovable_pages), drains the per-CPU
lists, and migrates what it can (mm/compaction.c isolate_migratepages_range: LRU pages,
and non-LRU pages with movable_ops); what it cannot isolate makes the range fail.
Reclaim (mm/vmscan.c shrink_folio_list) drops clean page cache at once; dirty or
writeback file pages need a writeback first. So the classes, cheapest first:

- BUDDY: free in the buddy allocator; PCP: free on a per-CPU list (drained first);
- CLEAN: clean page cache (LRU file, not dirty): reclaim drops it;
- DIRTY: dirty or under-writeback page cache: reclaim writes it back first (counted);
- MOVABLE: LRU anonymous pages and THP (migrated whole, as folios), hugetlb pool pages;
- PINNED: slab (reclaimable slab too: non-LRU without movable_ops, has_unmovable_pages()
  treats it as unmovable), page tables, unevictable/mlocked, reserved, kernel allocations;
- ISOLATED: taken by the contiguous allocator (engine bookkeeping); OUTSIDE: not managed
  memory (holes, reserved, offline), never part of a run.

A policy lets memarea use every class up to its `POLICY_MAX_CLASS`.
"""

from __future__ import annotations

import numpy as np

from replay.kernel import gfp, migratetypes, procfs

BUDDY, PCP, CLEAN, DIRTY, MOVABLE, PINNED, ISOLATED, OUTSIDE = range(8)
CLASS_NAMES = ("buddy", "pcp", "clean", "dirty", "movable", "pinned", "isolated", "outside")

#: memarea policies, nested, and the highest class each may use.
POLICIES = ("free", "reclaim", "migrate")
POLICY_MAX_CLASS = np.array([PCP, DIRTY, MOVABLE], dtype=np.uint8)


def request_class(gfp_flags: str | None, migratetype: int) -> int:
    """The class of the pages a traced allocation gets, decided from its gfp flags and
    (engine-numbered) migratetype, as the allocation site implies:

    - not MOVABLE (kernel allocations, slab of either kind): PINNED;
    - page cache: MOVABLE with `__GFP_WRITE` (write_begin: about to be dirtied) is DIRTY;
      readahead (`__GFP_NORETRY`, readahead_gfp_mask) is CLEAN;
    - anonymous memory (`__GFP_ZERO`), THP (GFP_TRANSHUGE*) and every other movable
      allocation: MOVABLE.
    """
    if migratetype != migratetypes.MOVABLE:
        return PINNED
    if gfp.has(gfp_flags, gfp.ZERO_NAMES) or gfp.has(gfp_flags, gfp.TRANSHUGE_NAMES):
        return MOVABLE
    if gfp.has(gfp_flags, gfp.WRITE_NAMES):
        return DIRTY
    if gfp.has(gfp_flags, gfp.NORETRY_NAMES):
        return CLEAN
    return MOVABLE


def kpageflags_class(flags: np.ndarray) -> np.ndarray:
    """The class of every pfn from its KPF_* bits (procfs.kpageflags)."""
    bit = lambda b: ((flags >> np.uint64(b)) & np.uint64(1)).astype(bool)  # noqa: E731
    out = np.full(len(flags), PINNED, np.uint8)
    lru = bit(procfs.KPF_LRU)
    anon = bit(procfs.KPF_ANON) | bit(procfs.KPF_SWAPBACKED)
    dirty = bit(procfs.KPF_DIRTY) | bit(procfs.KPF_WRITEBACK)
    stuck = bit(procfs.KPF_UNEVICTABLE) | bit(procfs.KPF_MLOCKED)
    out[lru & anon & ~stuck] = MOVABLE
    out[lru & ~anon & ~dirty & ~stuck] = CLEAN
    out[lru & ~anon & dirty & ~stuck] = DIRTY
    out[bit(procfs.KPF_HUGE) & ~bit(procfs.KPF_SLAB)] = MOVABLE  # hugetlb: migratable
    out[bit(procfs.KPF_BUDDY)] = BUDDY
    out[bit(procfs.KPF_NOPAGE) | bit(procfs.KPF_RESERVED) | bit(procfs.KPF_OFFLINE)] = OUTSIDE
    return out
