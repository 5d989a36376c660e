"""The simulated buddy allocator: any max order N, mobility grouping, fallback stealing.

Free lists per zone, order (0..N) and migratetype are intrusive doubly linked lists over
per-pfn index arrays (`nxt`, `prv`), with the free block's order (`free_order`) and list
(`fmt`) kept at its head pfn. Pageblocks of order min(9, N) carry a migratetype
(`pb_mt`). The code follows mm/page_alloc.c of Linux 6.15+ (the traced 6.18):

- `rmqueue_smallest`: __rmqueue_smallest + expand() (upper halves go back on the list);
- `rmqueue_claim`: __rmqueue_claim + try_to_claim_block(), largest fallback block first,
  claiming the whole pageblock when free + compatible pages reach half of it (Johannes
  Weiner's 6.15 split of the old steal_suitable_fallback() into claim and steal);
- `rmqueue_steal`: __rmqueue_steal, smallest fallback block, no ownership change;
- ALLOC_NOFRAGMENT for ZONE_NORMAL requests when a lower zone exists
  (alloc_flags_nofragment()): first pass over the zonelist claims only whole pageblocks
  and never steals, the second pass allows both;
- `free_one_page`: __free_one_page merging up to N; a merged buddy of another pageblock
  type is converted to the freeing block's type (6.10, "mm: page_alloc: fix freelist
  movement during block conversion").

Not modelled: per-CPU lists (their pages count as free), watermarks, compaction, CMA,
highatomic reserves, the list-tail placement of likely-to-merge buddies. Counters (`ctr`)
record the work a max order costs: split and merge steps, lists probed, fallbacks.
"""

from __future__ import annotations

import numba
import numpy as np

# counters (index into ctr)
C_ALLOCS, C_FREES, C_SPLITS, C_MERGES, C_LISTS, C_CLAIMS, C_STEALS, C_FAILED = range(8)
C_MEMAREA, C_RECLAIMED, C_MIGRATED, C_UNMAPPED_FREES = 8, 9, 10, 11
COUNTERS = ("allocs", "frees", "split_steps", "merge_steps", "lists_probed", "claims",
            "steals", "buddy_failed", "memarea_calls", "pages_reclaimed", "pages_migrated",
            "unmapped_frees")

#: fallbacks[] of mm/page_alloc.c (4.4+ numbering: 0 UNMOVABLE, 1 MOVABLE, 2 RECLAIMABLE).
FALLBACKS = np.array([[2, 1], [2, 0], [0, 1]], dtype=np.int64)

MOVABLE = 1


def pageblock_order(max_order: int) -> int:
    """pageblock_order for a max order: min(9, N) (HUGETLB_PAGE_ORDER capped by the max)."""
    return min(9, max_order)


class BuddyState:
    """The simulator's arrays; `arrays()` passes them to compiled code as one tuple."""

    def __init__(self, npages: int, nzones: int, max_order: int) -> None:
        self.max_order = max_order
        self.pb_order = pageblock_order(max_order)
        self.free_order = np.full(npages, -1, np.int8)
        self.fmt = np.full(npages, -1, np.int8)
        self.nxt = np.full(npages, -1, np.int32)
        self.prv = np.full(npages, -1, np.int32)
        self.heads = np.full((nzones, max_order + 1, 3), -1, np.int64)
        self.nr_free = np.zeros((nzones, max_order + 1, 3), np.int64)
        self.zfree = np.zeros(nzones, np.int64)
        self.pb_mt = np.full((npages >> self.pb_order) + 1, MOVABLE, np.int8)
        self.pcls = np.full(npages, 3, np.uint8)  # page classes, as stream.*_PAGE
        self.smt = np.full(npages, -2, np.int8)  # migratetype of an allocated page; -1 free
        self.s2r = np.full(npages, -1, np.int32)  # the traced page a simulated page holds
        self.r2s = np.full(npages, -1, np.int32)  # where the simulator put a traced page
        self.ctr = np.zeros(len(COUNTERS), np.int64)

    def arrays(self) -> tuple:
        return (self.free_order, self.fmt, self.nxt, self.prv, self.heads, self.nr_free,
                self.zfree, self.pb_mt, self.pcls, self.smt, self.s2r, self.r2s, self.ctr)


@numba.njit(cache=True)
def add_to_free(st, z, p, o, mt):
    free_order, fmt, nxt, prv, heads, nr_free, zfree = st[0], st[1], st[2], st[3], st[4], \
        st[5], st[6]
    h = heads[z, o, mt]
    free_order[p] = o
    fmt[p] = mt
    nxt[p] = h
    prv[p] = -1
    if h >= 0:
        prv[h] = p
    heads[z, o, mt] = p
    nr_free[z, o, mt] += 1
    zfree[z] += np.int64(1) << o


@numba.njit(cache=True)
def del_from_free(st, z, p):
    free_order, fmt, nxt, prv, heads, nr_free, zfree = st[0], st[1], st[2], st[3], st[4], \
        st[5], st[6]
    o = free_order[p]
    mt = fmt[p]
    n = nxt[p]
    v = prv[p]
    if v >= 0:
        nxt[v] = n
    else:
        heads[z, o, mt] = n
    if n >= 0:
        prv[n] = v
    free_order[p] = -1
    fmt[p] = -1
    nr_free[z, o, mt] -= 1
    zfree[z] -= np.int64(1) << o


@numba.njit(cache=True)
def set_pageblocks(pb_mt, pbo, p, o, mt):
    """change_pageblock_range(): every pageblock of [p, p + 2^o) becomes `mt`."""
    first = p >> pbo
    last = (p + (np.int64(1) << o) - 1) >> pbo
    for b in range(first, last + 1):
        pb_mt[b] = mt


@numba.njit(cache=True)
def expand(st, z, p, low, high, mt):
    """Split [p, p + 2^high) down to order `low`, the upper halves going on mt's lists."""
    ctr = st[12]
    while high > low:
        high -= 1
        add_to_free(st, z, p + (np.int64(1) << high), high, mt)
        ctr[2] += 1


@numba.njit(cache=True)
def rmqueue_smallest(st, z, order, mt, max_order):
    heads, ctr = st[4], st[12]
    for o in range(order, max_order + 1):
        ctr[4] += 1
        p = heads[z, o, mt]
        if p < 0:
            continue
        del_from_free(st, z, p)
        expand(st, z, p, order, o, mt)
        return p
    return -1


@numba.njit(cache=True)
def find_suitable_fallback(st, z, o, mt, claimable, pbo):
    """find_suitable_fallback(): the fallback type with a block of order o; -1 none, -2 stop."""
    heads, nr_free, ctr = st[4], st[5], st[12]
    if claimable and not (o >= pbo or o >= pbo // 2 or mt != MOVABLE):
        return -2  # should_try_claim_block() false: orders too low to claim
    for i in range(2):
        f = FALLBACKS[mt, i]
        ctr[4] += 1
        if heads[z, o, f] >= 0:
            return f
    return -1


@numba.njit(cache=True)
def prep_move_freepages_block(st, zlo, zhi, start, pbo):
    """(ok, free pages, movable pages) of the pageblock at `start`; not ok across a zone edge."""
    free_order, smt = st[0], st[9]
    end = start + (np.int64(1) << pbo)
    if start < zlo or end > zhi:
        return False, 0, 0
    free = 0
    movable = 0
    q = start
    while q < end:
        o = free_order[q]
        if o >= 0:
            free += np.int64(1) << o
            q += np.int64(1) << o
        else:
            if smt[q] == MOVABLE:
                movable += 1
            q += 1
    return True, free, movable


@numba.njit(cache=True)
def move_freepages_block(st, z, start, pbo, new_mt):
    """__move_freepages_block(): the pageblock's free blocks onto new_mt's lists."""
    free_order = st[0]
    end = start + (np.int64(1) << pbo)
    q = start
    while q < end:
        o = free_order[q]
        if o >= 0:
            del_from_free(st, z, q)
            add_to_free(st, z, q, o, new_mt)
            q += np.int64(1) << o
        else:
            q += 1


@numba.njit(cache=True)
def try_to_claim_block(st, z, zlo, zhi, p, cur, order, start_mt, block_mt, max_order, pbo):
    pb_mt = st[7]
    if cur >= pbo:
        del_from_free(st, z, p)
        set_pageblocks(pb_mt, pbo, p, cur, start_mt)
        expand(st, z, p, order, cur, start_mt)
        return p
    start = p >> pbo << pbo
    ok, free, movable = prep_move_freepages_block(st, zlo, zhi, start, pbo)
    if not ok:
        return -1
    if start_mt == MOVABLE:
        alike = movable
    elif block_mt == MOVABLE:
        alike = (np.int64(1) << pbo) - (free + movable)
    else:
        alike = 0
    if free + alike >= (np.int64(1) << (pbo - 1)):
        move_freepages_block(st, z, start, pbo, start_mt)
        pb_mt[start >> pbo] = start_mt
        return rmqueue_smallest(st, z, order, start_mt, max_order)
    return -1


@numba.njit(cache=True)
def rmqueue_claim(st, z, zlo, zhi, order, mt, max_order, pbo, nofragment):
    heads, ctr = st[4], st[12]
    min_order = order
    if order < pbo and nofragment:
        min_order = pbo
    for cur in range(max_order, min_order - 1, -1):
        f = find_suitable_fallback(st, z, cur, mt, True, pbo)
        if f == -1:
            continue
        if f == -2:
            break
        p = try_to_claim_block(st, z, zlo, zhi, heads[z, cur, f], cur, order, mt, f,
                               max_order, pbo)
        if p >= 0:
            ctr[5] += 1
            return p
    return -1


@numba.njit(cache=True)
def rmqueue_steal(st, z, order, mt, max_order, pbo):
    heads, ctr = st[4], st[12]
    for cur in range(order, max_order + 1):
        f = find_suitable_fallback(st, z, cur, mt, False, pbo)
        if f < 0:
            continue
        p = heads[z, cur, f]
        del_from_free(st, z, p)
        expand(st, z, p, order, cur, f)
        ctr[6] += 1
        return p
    return -1


@numba.njit(cache=True)
def rmqueue(st, z, zlo, zhi, order, mt, max_order, pbo, nofragment):
    """__rmqueue(): own lists, then claim a fallback block, then steal (unless NOFRAGMENT)."""
    p = rmqueue_smallest(st, z, order, mt, max_order)
    if p < 0:
        p = rmqueue_claim(st, z, zlo, zhi, order, mt, max_order, pbo, nofragment)
    if p < 0 and not nofragment:
        p = rmqueue_steal(st, z, order, mt, max_order, pbo)
    return p


@numba.njit(cache=True)
def buddy_alloc(st, zlo, zhi, ztype, order, mt, pref, max_order, pbo):
    """A block of `order` from the zonelist of zone type `pref`; (pfn, zone) or (-1, -1).

    The pages are not marked here: the caller owns the page classes.
    """
    ctr = st[12]
    nz = len(zlo)
    top = -1
    for z in range(nz - 1, -1, -1):
        if ztype[z] <= pref:
            top = z
            break
    if top < 0:
        ctr[7] += 1
        return -1, -1
    # alloc_flags_nofragment(): a ZONE_NORMAL request with a lower zone below it
    nofrag = ztype[top] == 2 and top > 0
    for attempt in range(2 if nofrag else 1):
        nf = nofrag and attempt == 0
        for z in range(top, -1, -1):
            p = rmqueue(st, z, zlo[z], zhi[z], order, mt, max_order, pbo, nf)
            if p >= 0:
                ctr[0] += 1
                return p, z
    ctr[7] += 1
    return -1, -1


@numba.njit(cache=True)
def free_one_page(st, z, zlo, zhi, p, o, max_order, pbo):
    """__free_one_page(): merge [p, p + 2^o) with free buddies up to max_order."""
    free_order, pb_mt, ctr = st[0], st[7], st[12]
    mt = pb_mt[p >> pbo]
    while o < max_order:
        b = p ^ (np.int64(1) << o)
        if b < zlo or b + (np.int64(1) << o) > zhi or free_order[b] != o:
            break
        del_from_free(st, z, b)
        if o >= pbo and pb_mt[b >> pbo] != mt:
            set_pageblocks(pb_mt, pbo, b, o, mt)
        p = min(p, b)
        o += 1
        ctr[3] += 1
    add_to_free(st, z, p, o, mt)


@numba.njit(cache=True)
def free_range(st, z, zlo, zhi, s, n, max_order, pbo):
    """Give [s, s + n) back to the buddy lists as aligned blocks of order <= max_order; the
    pages become free (class 0, no traced page)."""
    pcls, smt, s2r = st[8], st[9], st[10]
    for q in range(s, s + n):
        pcls[q] = 0
        smt[q] = -1
        s2r[q] = -1
    q = s
    end = s + n
    while q < end:
        o = max_order
        while o > 0 and (q & ((np.int64(1) << o) - 1) or q + (np.int64(1) << o) > end):
            o -= 1
        free_one_page(st, z, zlo, zhi, q, o, max_order, pbo)
        q += np.int64(1) << o


@numba.njit(cache=True)
def free_head_of(free_order, q, max_order):
    """The head pfn of the free block containing free page q (-1 if q is in none)."""
    for o in range(0, max_order + 1):
        h = q >> o << o
        if free_order[h] >= o:
            return h
    return -1
