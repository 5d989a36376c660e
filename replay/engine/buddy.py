"""The simulated buddy allocator: any max order N, mobility grouping, the traced kernel's
fallback era (replay/kernel/fallbacks.py), watermarks and lowmem_reserve.

Free lists per zone, order (0..N) and migratetype are intrusive doubly linked lists over
per-pfn index arrays (`nxt`, `prv`), with the free block's order (`free_order`) and list
(`fmt`) kept at its head pfn. Pageblocks of order min(9, N) carry a migratetype (`pb_mt`).
Functions are named after mm/page_alloc.c's:

- `rmqueue_smallest`: __rmqueue_smallest + expand() (upper halves go back on the list);
- fallback per era: `rmqueue_fallback_classic` (CLASSIC and HYGIENE: largest block first,
  `steal_suitable_fallback`), `rmqueue_claim` + `rmqueue_steal` (CLAIM_STEAL);
- `buddy_alloc`: the zonelist walk of get_page_from_freelist(): the zone the kernel used
  (the traced page's, when there is one) first, then the lower zones while
  zone_watermark_ok() holds (free pages above the low, then the min watermark plus the
  zone's lowmem_reserve for the request's zone type); ALLOC_NOFRAGMENT first;
- `free_one_page`: __free_one_page merging up to N; a merged buddy of another pageblock
  type is converted to the freeing block's type (6.10, "mm: page_alloc: fix freelist
  movement during block conversion").

Per-CPU lists are the caller's (simulated.py): here every operation is a buddy operation,
so the counters (`ctr`, `C_*`) measure the buddy allocator's work at buddy level.
Not modelled: compaction, CMA, highatomic reserves, watermark boosting, the list-tail
placement of likely-to-merge buddies.
"""

from __future__ import annotations

import numpy as np

from replay.engine.compiled import njit_noalloc
from replay.kernel import pagestate
from replay.kernel.fallbacks import CLAIM_STEAL, HYGIENE
from replay.kernel.migratetypes import FALLBACKS, MOVABLE, PCPTYPES
from replay.kernel.orders import pageblock_order
from replay.kernel.zones import ZONE_NORMAL

#: Counters (index into ctr).
COUNTERS = ("allocs", "frees", "split_steps", "merge_steps", "lists_probed", "claims",
            "steals", "buddy_failed", "memarea_calls", "pages_reclaimed", "pages_migrated",
            "unmapped_frees", "pages_written_back", "below_watermark", "pcp_refills",
            "pcp_drains", "direct_allocs", "traced_failures", "online_pages",
            "folios_migrated")
(C_ALLOCS, C_FREES, C_SPLITS, C_MERGES, C_LISTS, C_CLAIMS, C_STEALS, C_FAILED, C_MEMAREA,
 C_RECLAIMED, C_MIGRATED, C_UNMAPPED_FREES, C_WRITEBACK, C_BELOW_WMARK, C_REFILLS,
 C_DRAINS, C_DIRECT, C_TRACED_FAILED, C_ONLINE, C_FOLIOS) = range(len(COUNTERS))

#: st tuple indices (BuddyState.arrays()).
(S_FREE_ORDER, S_FMT, S_LINKS, S_HEADS, S_NR_FREE, S_ZFREE, S_PB_MT, S_PCLS, S_SMT,
 S_S2R, S_R2S, S_CTR, S_FORDER) = range(13)
#: Columns of `links`: a free block's next and previous block on its list.
NEXT, PREV = 0, 1


class BuddyState:
    """The simulator's arrays; `arrays()` passes them to compiled code as one tuple."""

    def __init__(self, npages: int, nzones: int, max_order: int) -> None:
        self.max_order = max_order
        self.pb_order = pageblock_order(max_order)
        self.free_order = np.full(npages, -1, np.int8)
        self.fmt = np.full(npages, -1, np.int8)
        # a free block's list neighbours side by side: one cache line per list operation
        self.links = np.full((npages, 2), -1, np.int32)
        self.nxt = self.links[:, NEXT]
        self.prv = self.links[:, PREV]
        self.heads = np.full((nzones, max_order + 1, PCPTYPES), -1, np.int64)
        self.nr_free = np.zeros((nzones, max_order + 1, PCPTYPES), np.int64)
        self.zfree = np.zeros(nzones, np.int64)
        self.pb_mt = np.full((npages >> self.pb_order) + 1, MOVABLE, np.int8)
        self.pcls = np.full(npages, pagestate.OUTSIDE, np.uint8)
        self.smt = np.full(npages, -1, np.int8)  # migratetype of an allocated page
        self.s2r = np.full(npages, -1, np.int32)  # the traced page a simulated page holds
        self.r2s = np.full(npages, -1, np.int32)  # where the simulator put a traced page
        self.forder = np.zeros(npages, np.int8)  # order of the folio an allocated page is in
        self.ctr = np.zeros(len(COUNTERS), np.int64)

    def arrays(self) -> tuple:
        return (self.free_order, self.fmt, self.links, self.heads, self.nr_free,
                self.zfree, self.pb_mt, self.pcls, self.smt, self.s2r, self.r2s, self.ctr,
                self.forder)


@njit_noalloc
def add_to_free(st, z, p, o, mt):
    free_order, fmt, links, heads = st[S_FREE_ORDER], st[S_FMT], st[S_LINKS], st[S_HEADS]
    h = heads[z, o, mt]
    free_order[p] = o
    fmt[p] = mt
    links[p, NEXT] = h
    links[p, PREV] = -1
    if h >= 0:
        links[h, PREV] = p
    heads[z, o, mt] = p
    st[S_NR_FREE][z, o, mt] += 1
    st[S_ZFREE][z] += np.int64(1) << o


@njit_noalloc
def del_from_free(st, z, p):
    free_order, fmt, links, heads = st[S_FREE_ORDER], st[S_FMT], st[S_LINKS], st[S_HEADS]
    o = free_order[p]
    mt = fmt[p]
    n = links[p, NEXT]
    v = links[p, PREV]
    if v >= 0:
        links[v, NEXT] = n
    else:
        heads[z, o, mt] = n
    if n >= 0:
        links[n, PREV] = v
    free_order[p] = -1
    fmt[p] = -1
    st[S_NR_FREE][z, o, mt] -= 1
    st[S_ZFREE][z] -= np.int64(1) << o


@njit_noalloc
def move_to_free_list(st, z, p, mt):
    """move_to_free_list(): a free block onto another migratetype's list."""
    o = np.int64(st[S_FREE_ORDER][p])
    del_from_free(st, z, p)
    add_to_free(st, z, p, o, mt)


@njit_noalloc
def set_pageblocks(pb_mt, pbo, p, o, mt):
    """change_pageblock_range(): every pageblock of [p, p + 2^o) becomes `mt`."""
    first = p >> pbo
    last = (p + (np.int64(1) << o) - 1) >> pbo
    for b in range(first, last + 1):
        pb_mt[b] = mt


@njit_noalloc
def expand(st, z, p, low, high, mt):
    """Split [p, p + 2^high) down to order `low`, the upper halves going on mt's lists."""
    ctr = st[S_CTR]
    while high > low:
        high -= 1
        add_to_free(st, z, p + (np.int64(1) << high), high, mt)
        ctr[C_SPLITS] += 1


@njit_noalloc
def page_del_and_expand(st, z, p, low, high, mt):
    del_from_free(st, z, p)
    expand(st, z, p, low, high, mt)


@njit_noalloc
def rmqueue_smallest(st, z, order, mt, max_order):
    heads, ctr = st[S_HEADS], st[S_CTR]
    for o in range(order, max_order + 1):
        ctr[C_LISTS] += 1
        p = heads[z, o, mt]
        if p < 0:
            continue
        page_del_and_expand(st, z, p, order, o, mt)
        return p
    return -1


@njit_noalloc
def can_steal_fallback(order, start_mt, pbo):
    """can_steal_fallback() / should_try_claim_block(): may this fallback claim the whole
    pageblock? (orders of half a pageblock and up, and any non-movable request)"""
    return order >= pbo or order >= pbo // 2 or start_mt != MOVABLE


@njit_noalloc
def find_suitable_fallback(st, z, o, mt):
    """find_suitable_fallback(): the first fallback type with a block of order o, or -1."""
    heads, ctr = st[S_HEADS], st[S_CTR]
    for i in range(FALLBACKS.shape[1]):
        f = FALLBACKS[mt, i]
        ctr[C_LISTS] += 1
        if heads[z, o, f] >= 0:
            return f
    return -1


@njit_noalloc
def prep_move_freepages_block(st, zlo, zhi, start, pbo):
    """(ok, free pages, movable pages) of the pageblock at `start`; not ok across a zone edge."""
    free_order, smt = st[S_FREE_ORDER], st[S_SMT]
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


@njit_noalloc
def move_freepages_block(st, z, start, pbo, new_mt):
    """__move_freepages_block(): the pageblock's free blocks onto new_mt's lists."""
    free_order = st[S_FREE_ORDER]
    end = start + (np.int64(1) << pbo)
    q = start
    while q < end:
        o = free_order[q]
        if o >= 0:
            move_to_free_list(st, z, q, new_mt)
            q += np.int64(1) << o
        else:
            q += 1


@njit_noalloc
def claim_threshold_met(st, zlo, zhi, p, start_mt, block_mt, pbo):
    """(inside, met, pageblock start): whether the pageblock lies inside the zone, and
    whether its free + compatible pages reach half of it."""
    start = p >> pbo << pbo
    ok, free, movable = prep_move_freepages_block(st, zlo, zhi, start, pbo)
    if not ok:
        return False, False, start
    if start_mt == MOVABLE:
        alike = movable
    elif block_mt == MOVABLE:
        alike = (np.int64(1) << pbo) - (free + movable)
    else:
        alike = 0
    return True, free + alike >= (np.int64(1) << (pbo - 1)), start


@njit_noalloc
def try_to_claim_block(st, z, zlo, zhi, p, cur, order, start_mt, block_mt, max_order, pbo):
    """try_to_claim_block() (6.15+; steal_suitable_fallback()'s claim in 6.10-6.14)."""
    pb_mt = st[S_PB_MT]
    if cur >= pbo:
        del_from_free(st, z, p)
        set_pageblocks(pb_mt, pbo, p, cur, start_mt)
        expand(st, z, p, order, cur, start_mt)
        return p
    _, met, start = claim_threshold_met(st, zlo, zhi, p, start_mt, block_mt, pbo)
    if met:
        move_freepages_block(st, z, start, pbo, start_mt)
        pb_mt[start >> pbo] = start_mt
        return rmqueue_smallest(st, z, order, start_mt, max_order)
    return -1


@njit_noalloc
def rmqueue_claim(st, z, zlo, zhi, order, mt, max_order, pbo, nofragment):
    """__rmqueue_claim() (6.15+): the largest fallback block whose pageblock can be claimed."""
    heads, ctr = st[S_HEADS], st[S_CTR]
    min_order = order
    if order < pbo and nofragment:
        min_order = pbo
    for cur in range(max_order, min_order - 1, -1):
        if not can_steal_fallback(cur, mt, pbo):
            break
        f = find_suitable_fallback(st, z, cur, mt)
        if f < 0:
            continue
        p = try_to_claim_block(st, z, zlo, zhi, heads[z, cur, f], cur, order, mt, f,
                               max_order, pbo)
        if p >= 0:
            ctr[C_CLAIMS] += 1
            return p
    return -1


@njit_noalloc
def rmqueue_steal(st, z, order, mt, max_order):
    """__rmqueue_steal() (6.15+): the smallest fallback block, no ownership change."""
    heads, ctr = st[S_HEADS], st[S_CTR]
    for cur in range(order, max_order + 1):
        f = find_suitable_fallback(st, z, cur, mt)
        if f < 0:
            continue
        p = heads[z, cur, f]
        page_del_and_expand(st, z, p, order, cur, f)
        ctr[C_STEALS] += 1
        return p
    return -1


@njit_noalloc
def rmqueue_fallback_classic(st, z, zlo, zhi, order, mt, max_order, pbo, nofragment, era):
    """__rmqueue_fallback() up to 6.14: largest fallback block first (smallest for a movable
    request that cannot claim), then steal_suitable_fallback(); CLASSIC moves the
    pageblock's free pages to the requester's lists and retries them, HYGIENE claims the
    pageblock or takes only the requested chunk."""
    heads, pb_mt, ctr = st[S_HEADS], st[S_PB_MT], st[S_CTR]
    min_order = order
    if order < pbo and nofragment:
        min_order = pbo
    cur = -1
    f = -1
    for c in range(max_order, min_order - 1, -1):
        f = find_suitable_fallback(st, z, c, mt)
        if f < 0:
            continue
        if not can_steal_fallback(c, mt, pbo) and mt == MOVABLE and c > order:
            cur = -2  # find_smallest
        else:
            cur = c
        break
    if cur == -2:
        cur = -1
        for c in range(order, max_order + 1):
            f = find_suitable_fallback(st, z, c, mt)
            if f >= 0:
                cur = c
                break
    if cur < 0:
        return -1
    p = heads[z, cur, f]
    whole = can_steal_fallback(cur, mt, pbo)
    if era == HYGIENE:
        if cur >= pbo or whole:
            q = try_to_claim_block(st, z, zlo, zhi, p, cur, order, mt, f, max_order, pbo)
            if q >= 0:
                ctr[C_CLAIMS] += 1
                return q
        page_del_and_expand(st, z, p, order, cur, f)
        ctr[C_STEALS] += 1
        return p
    # CLASSIC: steal_suitable_fallback(), then __rmqueue() retries its own lists
    if cur >= pbo:
        set_pageblocks(pb_mt, pbo, p, cur, mt)
        move_to_free_list(st, z, p, mt)
        ctr[C_CLAIMS] += 1
    elif whole:
        inside, met, start = claim_threshold_met(st, zlo, zhi, p, mt, f, pbo)
        if inside:
            move_freepages_block(st, z, start, pbo, mt)
        else:  # a pageblock across the zone edge: move_freepages_block() moves nothing
            move_to_free_list(st, z, p, mt)
        if met:
            pb_mt[start >> pbo] = mt
            ctr[C_CLAIMS] += 1
        else:
            ctr[C_STEALS] += 1
    else:
        move_to_free_list(st, z, p, mt)
        ctr[C_STEALS] += 1
    return rmqueue_smallest(st, z, order, mt, max_order)


@njit_noalloc
def rmqueue(st, z, zlo, zhi, order, mt, max_order, pbo, nofragment, era):
    """__rmqueue(): own lists, then the era's fallback (never stealing under NOFRAGMENT)."""
    p = rmqueue_smallest(st, z, order, mt, max_order)
    if p >= 0:
        return p
    if era == CLAIM_STEAL:
        p = rmqueue_claim(st, z, zlo, zhi, order, mt, max_order, pbo, nofragment)
        if p < 0 and not nofragment:
            p = rmqueue_steal(st, z, order, mt, max_order)
        return p
    return rmqueue_fallback_classic(st, z, zlo, zhi, order, mt, max_order, pbo, nofragment,
                                    era)


@njit_noalloc
def watermark_ok(st, z, order, mark, prot):
    """__zone_watermark_ok()'s free-page test: the zone keeps `mark` plus lowmem_reserve
    pages free after the request (the order test is rmqueue finding a block)."""
    return st[S_ZFREE][z] - ((np.int64(1) << order) - 1) > mark + prot


@njit_noalloc
def buddy_alloc(st, zlo, zhi, ztype, wmin, wlow, prot, first, pref, order, mt, max_order,
                pbo, era, nofrag_ok):
    """A block of `order` for a request of zone type `pref`: (pfn, zone) or (-1, -1).

    `first` is the zone the kernel used (-1 if unknown): tried first, without watermark
    (the kernel found it fit). Then the zonelist, highest eligible zone first, while
    zone_watermark_ok() holds at the low watermark, then at the min watermark; past both
    a block is still taken where one exists (the kernel would have reclaimed first) and
    counted below_watermark. The pages are not marked here: the caller owns the classes.
    """
    ctr = st[S_CTR]
    nz = len(zlo)
    top = -1
    for z in range(nz - 1, -1, -1):
        if ztype[z] <= pref:
            top = z
            break
    if top < 0 and first < 0:
        ctr[C_FAILED] += 1
        return -1, -1
    # alloc_flags_nofragment(): a ZONE_NORMAL request with a lower zone below it
    nofrag = nofrag_ok and top > 0 and ztype[top] == ZONE_NORMAL
    for attempt in range(2 if nofrag else 1):
        nf = nofrag and attempt == 0
        for level in range(3):  # low watermark, min watermark, none
            if first >= 0 and level == 0:
                p = rmqueue(st, first, zlo[first], zhi[first], order, mt, max_order, pbo,
                            nf, era)
                if p >= 0:
                    ctr[C_ALLOCS] += 1
                    return p, first
            for z in range(top, -1, -1):
                if z == first:
                    continue
                mark = wlow[z] if level == 0 else wmin[z]
                if level < 2 and not watermark_ok(st, z, order, mark, prot[z, pref]):
                    continue
                p = rmqueue(st, z, zlo[z], zhi[z], order, mt, max_order, pbo, nf, era)
                if p >= 0:
                    ctr[C_ALLOCS] += 1
                    if level == 2:
                        ctr[C_BELOW_WMARK] += 1
                    return p, z
    ctr[C_FAILED] += 1
    return -1, -1


@njit_noalloc
def free_one_page(st, z, zlo, zhi, p, o, max_order, pbo):
    """__free_one_page(): merge [p, p + 2^o) with free buddies up to max_order."""
    free_order, pb_mt, ctr = st[S_FREE_ORDER], st[S_PB_MT], st[S_CTR]
    mt = np.int64(pb_mt[p >> pbo])
    while o < max_order:
        b = p ^ (np.int64(1) << o)
        if b < zlo or b + (np.int64(1) << o) > zhi or free_order[b] != o:
            break
        del_from_free(st, z, b)
        if o >= pbo and pb_mt[b >> pbo] != mt:
            set_pageblocks(pb_mt, pbo, b, o, mt)
        p = min(p, b)
        o += 1
        ctr[C_MERGES] += 1
    add_to_free(st, z, p, o, mt)


@njit_noalloc
def free_range(st, z, zlo, zhi, s, n, max_order, pbo):
    """Give [s, s + n) back to the buddy lists as aligned blocks of order <= max_order; the
    pages become free (class BUDDY, no traced page)."""
    pcls, smt, s2r = st[S_PCLS], st[S_SMT], st[S_S2R]
    for q in range(s, s + n):
        pcls[q] = pagestate.BUDDY
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


@njit_noalloc
def free_head_of(free_order, q, max_order):
    """The head pfn of the free block containing free page q (-1 if q is in none)."""
    for o in range(0, max_order + 1):
        h = q >> o << o
        if free_order[h] >= o:
            return h
    return -1
