"""Simulated mode: a buddy allocator of max order N replays the trace's operations.

It starts from the world at trace start (`world.build_world`): its free pages become free
blocks of order <= N, every other page of the world stays where it was (a traced free of
a page allocated before the trace releases the same page). The stream's operations then
run at the level the kernel ran them (stream.py):

- TAKE (the buddy allocator handed a block to a per-CPU list or a caller): a block of the
  same order and migratetype from the simulated buddy allocator, the traced page's zone
  first (`buddy.buddy_alloc`); its pages go on a per-CPU list (class PCP), standing for
  the traced pages (`r2s` maps traced pages to simulated ones);
- ALLOC of order <= N: a caller takes the pages its traced block stands for from the
  per-CPU list; without them (no TAKE traced, or the model's refill failed) the buddy
  allocator serves it directly. An allocation the kernel failed is never served here;
- ALLOC above N: memarea (memarea.py) searches the simulated state; a run it finds is
  isolated, its page cache dropped (dirty pages written back first), its movable pages
  migrated to free pages outside the run, its per-CPU pages drained; a request the kernel
  failed is judged but not served;
- FREE_PCP: the pages go back on a per-CPU list; FREE_BUDDY (and any free above N): back
  to the buddy lists, merging; DRAIN: from a per-CPU list to the buddy lists; ONLINE:
  onlined memory joins the buddy lists.

Orders above N never exist as blocks: their TAKE and DRAIN entries do nothing, their
frees go straight to the buddy lists.
"""

from __future__ import annotations

import numba
import numpy as np

from replay.engine.buddy import (
    C_DIRECT,
    C_DRAINS,
    C_FOLIOS,
    C_FREES,
    C_MEMAREA,
    C_MIGRATED,
    C_ONLINE,
    C_RECLAIMED,
    C_REFILLS,
    C_TRACED_FAILED,
    C_UNMAPPED_FREES,
    C_WRITEBACK,
    S_CTR,
    S_FORDER,
    S_FREE_ORDER,
    S_NR_FREE,
    S_PCLS,
    S_R2S,
    S_S2R,
    S_SMT,
    S_ZFREE,
    BuddyState,
    buddy_alloc,
    del_from_free,
    free_head_of,
    free_range,
)
from replay.engine.compiled import njit_noalloc, prefetch
from replay.engine.measures import free_blocks
from replay.engine.observed import OUT_BUDDY, OUT_FAILED, memarea_request, zone_index
from replay.engine.stream import DRAIN, FREE_BUDDY, FREE_PCP, ONLINE, TAKE
from replay.kernel.orders import HPAGE_PMD_ORDER
from replay.kernel.pagestate import BUDDY, CLEAN, DIRTY, ISOLATED, MOVABLE, OUTSIDE, PCP

#: `_release`'s class for "any class but free" (as int64: one compiled version of it).
ANY_HELD = np.int64(-1)
#: `buddy_alloc`'s `first` when no zone is known to have served the request.
NO_ZONE = np.int64(-1)
#: How many stream entries ahead the loop prefetches the traced page's mapping (`r2s`),
#: and, from that mapping once it has arrived, the simulated page's state. The loop is
#: bound by these cache misses (docs/speed.md, "Sixth step"); the distances were measured
#: on big3m (16/8 and 32/16 alike, 12/6 slower).
TRACED_AHEAD, SIMULATED_AHEAD = 32, 16


@njit_noalloc
def populate(st, zlo, zhi, max_order, pbo):
    """Fill the free lists from the world's free pages (class BUDDY), each free run cut
    into the largest aligned blocks; every other page of the world maps to itself."""
    pcls, s2r, r2s = st[S_PCLS], st[S_S2R], st[S_R2S]
    for z in range(len(zlo)):
        q = zlo[z]
        while q < zhi[z]:
            if pcls[q] != BUDDY:
                if pcls[q] != OUTSIDE:
                    s2r[q] = q
                    r2s[q] = q
                q += 1
                continue
            e = q
            while e < zhi[z] and pcls[e] == BUDDY:
                e += 1
            free_range(st, z, zlo[z], zhi[z], q, e - q, max_order, pbo)
            q = e


@njit_noalloc
def type_allocated(pcls, smt, pb_mt, pbo):
    """An allocated page's migratetype is its pageblock's (one pass, no temporaries: a
    replay's fresh memory is slow to touch on a VM)."""
    for q in range(len(pcls)):
        if PCP < pcls[q] < ISOLATED:
            smt[q] = pb_mt[q >> pbo]


@njit_noalloc
def _mark(st, s, n, cls, mt, p, folio_order):
    """Simulated [s, s + n) now holds traced [p, p + n) (p < 0: nothing traced) as `cls`;
    `folio_order` > 0 makes the block one folio (migrated whole)."""
    pcls, smt, s2r, r2s, forder = st[S_PCLS], st[S_SMT], st[S_S2R], st[S_R2S], st[S_FORDER]
    for i in range(n):
        pcls[s + i] = cls
        smt[s + i] = mt
        forder[s + i] = folio_order
        if p >= 0:
            s2r[s + i] = p + i
            r2s[p + i] = s + i
        else:
            s2r[s + i] = -1


@njit_noalloc
def _held(st, p, n, cls):
    """The simulated head holding traced [p, p + n) as one aligned block of class `cls`,
    or -1."""
    r2s, pcls = st[S_R2S], st[S_PCLS]
    s0 = r2s[p]
    if s0 < 0 or (s0 & (n - 1)) != 0:
        return -1
    for i in range(n):
        if r2s[p + i] != s0 + i or pcls[s0 + i] != cls:
            return -1
    return s0


@njit_noalloc
def _unmap(st, q):
    """Simulated page q no longer stands for a traced page."""
    s2r, r2s = st[S_S2R], st[S_R2S]
    r = s2r[q]
    if r >= 0:
        r2s[r] = -1
    s2r[q] = -1


@njit_noalloc
def _migrate_page(st, z, zlo, zhi, zt, wmin, wlow, prot, q, max_order, pbo, era):
    """Migrate simulated page q to a free page outside the run; returns 1."""
    pcls, smt, s2r, r2s = st[S_PCLS], st[S_SMT], st[S_S2R], st[S_R2S]
    d, dz = buddy_alloc(st, zlo, zhi, zt, wmin, wlow, prot, NO_ZONE, zt[z], np.int64(0),
                        np.int64(max(smt[q], 0)), max_order, pbo, era, np.bool_(False))
    r = s2r[q]
    if d >= 0:  # find_run checked the zone's free pages could take them all
        pcls[d] = MOVABLE
        smt[d] = smt[q]
        st[S_FORDER][d] = 0
        s2r[d] = r
        if r >= 0:
            r2s[r] = d
    elif r >= 0:
        r2s[r] = -1
    return 1


@njit_noalloc
def _migrate_folio(st, z, zlo, zhi, zt, wmin, wlow, prot, q, s, end, max_order, pbo, era):
    """Migrate the folio holding page q whole, to a free block of its order outside the
    run (migrate_pages() moves folios; a THP needs a destination of its own order).
    Its pages in [s, end) become isolated, those outside the run free. Returns (the run
    position after the folio, pages moved); (q, 0) when no block of its order is free:
    the folio is then split, as migrate_pages_batch() splits a large folio on -ENOMEM
    (try_split_folio), and its pages migrate one by one."""
    pcls, smt, s2r, r2s, forder, ctr = st[S_PCLS], st[S_SMT], st[S_S2R], st[S_R2S], \
        st[S_FORDER], st[S_CTR]
    fo = np.int64(forder[q])
    n = np.int64(1) << fo
    h = q >> fo << fo
    d, dz = buddy_alloc(st, zlo, zhi, zt, wmin, wlow, prot, NO_ZONE, zt[z], fo,
                        np.int64(max(smt[q], 0)), max_order, pbo, era, np.bool_(False))
    if d < 0:
        for x in range(h, h + n):
            forder[x] = 0
        return q, 0
    for i in range(n):
        x = h + i
        pcls[d + i] = pcls[x]
        smt[d + i] = smt[x]
        forder[d + i] = fo
        r = s2r[x]
        s2r[d + i] = r
        if r >= 0:
            r2s[r] = d + i
        s2r[x] = -1
        if s <= x < end:
            pcls[x] = ISOLATED
            smt[x] = -1
    if h < s:
        free_range(st, z, zlo[z], zhi[z], h, s - h, max_order, pbo)
    if h + n > end:
        free_range(st, z, zlo[z], zhi[z], end, h + n - end, max_order, pbo)
    ctr[C_FOLIOS] += 1
    return min(h + n, end), n


@njit_noalloc
def _take_run(st, z, zlo, zhi, zt, wmin, wlow, prot, s, size, max_order, pbo, era):
    """Isolate [s, s + size): its free blocks leave the lists (parts outside go back),
    per-CPU pages are drained, page cache dropped (dirty pages written back), movable
    pages migrate out. Returns (reclaimed, migrated)."""
    free_order, pcls, smt, s2r, _r2s, ctr = st[S_FREE_ORDER], st[S_PCLS], st[S_SMT], \
        st[S_S2R], st[S_R2S], st[S_CTR]
    end = s + size
    q = s
    outside_lo = -1
    outside_hi = -1
    while q < end:
        if pcls[q] == BUDDY:
            h = free_head_of(free_order, q, max_order)
            hend = h + (np.int64(1) << free_order[h])
            del_from_free(st, z, h)
            for x in range(h, hend):
                pcls[x] = ISOLATED
            if h < s:
                outside_lo = h
            if hend > end:
                outside_hi = hend
            q = hend
        else:
            q += 1
    if outside_lo >= 0:
        free_range(st, z, zlo[z], zhi[z], outside_lo, s - outside_lo, max_order, pbo)
    if outside_hi >= 0:
        free_range(st, z, zlo[z], zhi[z], end, outside_hi - end, max_order, pbo)
    reclaimed = 0
    migrated = 0
    q = s
    while q < end:
        c = pcls[q]
        if c == PCP:
            _unmap(st, q)
        elif c == CLEAN or c == DIRTY:
            _unmap(st, q)
            reclaimed += 1
            if c == DIRTY:
                ctr[C_WRITEBACK] += 1
        elif c == MOVABLE and st[S_FORDER][q] > 0:
            nxt, moved = _migrate_folio(st, z, zlo, zhi, zt, wmin, wlow, prot, q, s, end,
                                        max_order, pbo, era)
            if moved:  # the whole folio moved; its pages in the run are isolated
                migrated += moved
                q = nxt
                continue
            migrated += _migrate_page(st, z, zlo, zhi, zt, wmin, wlow, prot, q, max_order,
                                      pbo, era)
        elif c == MOVABLE:
            migrated += _migrate_page(st, z, zlo, zhi, zt, wmin, wlow, prot, q, max_order,
                                      pbo, era)
        pcls[q] = ISOLATED
        smt[q] = -1
        s2r[q] = -1
        q += 1
    ctr[C_RECLAIMED] += reclaimed
    ctr[C_MIGRATED] += migrated
    return reclaimed, migrated


@njit_noalloc
def _release(st, zlo, zhi, p, o, max_order, pbo, cls):
    """Give back to the buddy lists what the simulator holds for traced [p, p + 2^o)
    (pages of class `cls`, or any class but free when cls is ANY_HELD); False if nothing."""
    r2s, pcls = st[S_R2S], st[S_PCLS]
    n = np.int64(1) << o
    s0 = _held(st, p, n, pcls[r2s[p]] if r2s[p] >= 0 else -1)
    if s0 >= 0 and (cls < 0 and pcls[s0] > PCP or pcls[s0] == cls):
        z = zone_index(zlo, zhi, s0)
        free_range(st, z, zlo[z], zhi[z], s0, n, max_order, pbo)
        for i in range(n):
            r2s[p + i] = -1
        return True
    any_ = False
    for i in range(n):
        s = np.int64(r2s[p + i])
        if s >= 0 and (cls < 0 and pcls[s] > PCP or pcls[s] == cls):
            z = zone_index(zlo, zhi, s)
            free_range(st, z, zlo[z], zhi[z], s, np.int64(1), max_order, pbo)
            r2s[p + i] = -1
            any_ = True
    return any_


@njit_noalloc
def _prefetch_ahead(st, pfn, i, hi):
    """Start loading what entries i + TRACED_AHEAD and i + SIMULATED_AHEAD will touch: the
    first one's traced-page mapping, the second one's simulated page (its class, traced
    page, migratetype and folio order)."""
    r2s = st[S_R2S]
    j = i + TRACED_AHEAD
    if j < hi and pfn[j] >= 0:
        prefetch(r2s, pfn[j])
    j = i + SIMULATED_AHEAD
    if j < hi and pfn[j] >= 0:
        q = r2s[pfn[j]]
        if q >= 0:
            prefetch(st[S_PCLS], q)
            prefetch(st[S_S2R], q)
            prefetch(st[S_SMT], q)
            prefetch(st[S_FORDER], q)


@njit_noalloc
def replay_simulated(st, cursor, kind, pfn, order, migratetype, pclass, folio, zone_pref, tzone,
                     lo, hi, zlo, zhi, ztype, wmin, wlow, prot, max_order, pbo, era, nofrag,
                     searches, policy, grids, egrids, req_slot, r_out, r_cost, r_recl, r_migr,
                     r_false):
    """Replay stream entries [lo, hi) through the simulator, filling request slots."""
    pcls, ctr = st[S_PCLS], st[S_CTR]
    block = np.int64(1) << max_order
    for i in range(lo, hi):
        _prefetch_ahead(st, pfn, i, hi)
        p = np.int64(pfn[i])  # one compiled version of each callee: int64 arguments
        o = np.int64(order[i])
        mt = np.int64(migratetype[i])
        tz = np.int64(tzone[i])
        e = kind[i]
        n = np.int64(1) << o
        if e == TAKE:
            if o > max_order:
                continue
            s, z = buddy_alloc(st, zlo, zhi, ztype, wmin, wlow, prot, tz, ztype[tz], o, mt,
                               max_order, pbo, era, nofrag)
            ctr[C_REFILLS] += 1
            if s >= 0:
                _mark(st, s, n, PCP, mt, p, 0)
            continue
        if e == DRAIN:
            if o <= max_order and _release(st, zlo, zhi, p, o, max_order, pbo, np.int64(PCP)):
                ctr[C_DRAINS] += 1
                ctr[C_FREES] += 1
            continue
        if e == FREE_PCP and o <= max_order:
            s0 = _held(st, p, n, pcls[st[S_R2S][p]] if st[S_R2S][p] >= 0 else -1)
            if s0 >= 0 and pcls[s0] > PCP:
                for x in range(s0, s0 + n):
                    pcls[x] = PCP
            else:
                ctr[C_UNMAPPED_FREES] += 1
            continue
        if e == FREE_PCP or e == FREE_BUDDY:
            if _release(st, zlo, zhi, p, o, max_order, pbo, ANY_HELD):
                ctr[C_FREES] += 1
            else:
                ctr[C_UNMAPPED_FREES] += 1
            continue
        if e == ONLINE:
            free_range(st, tz, zlo[tz], zhi[tz], p, n, max_order, pbo)
            ctr[C_ONLINE] += n
            ctr[C_FREES] += 1
            continue
        # ALLOC
        slot = req_slot[i]
        nr = 0
        nm = 0
        ex = False
        s = -1
        if o <= max_order:
            if p < 0:
                out = OUT_FAILED  # the kernel failed it: never served
                ctr[C_TRACED_FAILED] += 1
            else:
                s = _held(st, p, n, PCP)
                if s < 0:
                    s, z = buddy_alloc(st, zlo, zhi, ztype, wmin, wlow, prot, tz,
                                       np.int64(zone_pref[i]), o, mt, max_order, pbo, era,
                                       nofrag)
                    ctr[C_DIRECT] += 1
                out = OUT_BUDDY if s >= 0 else OUT_FAILED
        else:
            ctr[C_MEMAREA] += 1
            s, z, nr, nm, out, ex = memarea_request(
                pcls, zlo, zhi, ztype, st[S_ZFREE], cursor, zone_pref[i], n, grids[o],
                egrids[o], searches, policy, block, r_cost[slot])
            if s >= 0 and p >= 0:  # count what was really dropped and moved
                nr, nm = _take_run(st, z, zlo, zhi, ztype, wmin, wlow, prot, s, n, max_order,
                                   pbo, era)
            elif p < 0:
                s = -1  # judged, not served: the kernel failed it
        if s >= 0:
            _mark(st, s, n, pclass[i], mt, p, o if folio[i] else 0)
        elif p >= 0:
            for x in range(p, p + n):
                st[S_R2S][x] = -1  # the traced allocation got nothing here
        if slot >= 0:
            r_out[slot] = out
            r_recl[slot] = nr
            r_migr[slot] = nm
            r_false[slot] = ex


@numba.njit(cache=True)
def sample(st, zlo, zhi, max_order, nr_out, long_out):
    """Free blocks per zone/order (buddy counters) and the longest free run per zone."""
    nr_free = st[S_NR_FREE]
    for z in range(len(zlo)):
        for o in range(min(max_order + 1, nr_out.shape[1])):
            nr_out[z, o] = nr_free[z, o].sum()
        long_out[z] = longest_free_run(st, z, zlo[z], zhi[z], max_order)


@numba.njit(cache=True)
def longest_free_run(st, z, lo, hi, max_order):
    """Zone z's longest run of buddy-free pages, walked free block by free block from each
    free max-order block (blocks are coalesced, so a free aligned max-order window is one;
    they are found in pfn order by reading `free_order` at every max-order boundary). A
    run holding no such block is at most 2^(max_order+1) - 2 pages: only when every run
    found is shorter than that are all pages scanned (`measures.free_blocks`)."""
    free_order = st[S_FREE_ORDER]
    top = max_order
    step = np.int64(1) << top
    best = 0
    end = -1
    for h in range((lo + step - 1) >> top << top, hi - step + 1, step):
        if h < end or free_order[h] != top:  # inside the run just walked, or not free
            continue
        s = h
        extended = True
        while extended:  # a free block ending at s - 1 starts at s - 2^o, of order o
            extended = False
            for o in range(top + 1):
                c = s - (np.int64(1) << o)
                if c >= lo and free_order[c] == o:
                    s = c
                    extended = True
                    break
        end = h
        while end < hi and free_order[end] >= 0:
            end += np.int64(1) << free_order[end]
        best = max(best, end - s)
    if best >= (np.int64(2) << top) - 2:
        return best
    scratch = np.zeros(top + 1, np.int64)
    return free_blocks(st[S_PCLS], lo, hi, top, scratch)


def new_state(world, nzones: int, max_order: int, zlo: np.ndarray, zhi: np.ndarray
              ) -> BuddyState:
    """The simulator at trace start, from the world (`world.World`)."""
    state = BuddyState(world.npages, nzones, max_order)
    state.pcls[:] = world.pcls
    # the world types pageblocks of HPAGE_PMD_ORDER pages; smaller ones inherit the type
    shift = HPAGE_PMD_ORDER - state.pb_order
    blocks = np.arange(len(state.pb_mt)) >> shift
    state.pb_mt[:] = world.pb_mt[np.minimum(blocks, len(world.pb_mt) - 1)]
    type_allocated(state.pcls, state.smt, state.pb_mt, state.pb_order)
    populate(state.arrays(), zlo, zhi, max_order, state.pb_order)
    return state
