"""Simulated mode: the buddy allocator of max order N serves the trace's request stream.

The simulator starts from the observed state at trace start (`observed.initial_state`):
its free pages become free blocks of order <= N, pages allocated before the trace stay
where they were (a traced free of them releases the same pages), unknown pages stay
allocated (or free, with `--unknown free`). Each traced allocation of order <= N gets a
block from `buddy.buddy_alloc` (zone from its gfp, its migratetype); each traced free
releases what the simulator gave to the matching allocation (`r2s` maps traced pages to
simulated ones). Requests above N go to memarea (same searches as observed mode) in the
simulated state; a run it finds is isolated from the buddy lists, its reclaimable pages
are dropped (their traced frees are then ignored), its movable pages are migrated one page
at a time to order-0 blocks outside the run, and the run is handed out; its traced free
gives it back to the buddy lists like any other block.
"""

from __future__ import annotations

import numba
import numpy as np

from replay.engine.buddy import (
    BuddyState,
    buddy_alloc,
    del_from_free,
    free_head_of,
    free_range,
)
from replay.engine.measures import free_blocks
from replay.engine.observed import OUT_BUDDY, OUT_FAILED, memarea_request, zone_index
from replay.engine.stream import ALLOC


@numba.njit(cache=True)
def initial_pageblocks(kind, pfn, order, migratetype, pb_mt, pbo):
    """A pageblock's type: that of the first traced allocation in it (MOVABLE if none)."""
    seen = np.zeros(len(pb_mt), np.uint8)
    for i in range(len(kind)):
        if kind[i] != ALLOC or pfn[i] < 0:
            continue
        first = pfn[i] >> pbo
        last = (pfn[i] + (np.int64(1) << order[i]) - 1) >> pbo
        for b in range(first, last + 1):
            if not seen[b]:
                seen[b] = 1
                pb_mt[b] = migratetype[i]


@numba.njit(cache=True)
def populate(st, pcls0, aorder0, zlo, zhi, max_order, pbo):
    """Fill the free lists from the initial page classes; pretrace pages map to themselves.

    Each free run goes through `free_range`, which cuts it into the largest aligned
    blocks; cut that way no two blocks are free buddies, so nothing merges. Pages not
    free keep the state's initial class (PINNED).
    """
    s2r, r2s = st[10], st[11]
    for z in range(len(zlo)):
        q = zlo[z]
        while q < zhi[z]:
            if pcls0[q] != 0:
                q += 1
                continue
            e = q
            while e < zhi[z] and pcls0[e] == 0:
                e += 1
            free_range(st, z, zlo[z], zhi[z], q, e - q, max_order, pbo)
            q = e
    # pages allocated before the trace: a traced free of them releases the same pages
    for p in range(len(aorder0)):
        o = aorder0[p]
        if o >= 0 and pcls0[p] != 0:
            for x in range(p, p + (np.int64(1) << o)):
                s2r[x] = x
                r2s[x] = x


@numba.njit(cache=True)
def _mark_alloc(st, s, n, cls, mt, p):
    pcls, smt, s2r, r2s = st[8], st[9], st[10], st[11]
    for i in range(n):
        pcls[s + i] = cls
        smt[s + i] = mt
        if p >= 0:
            s2r[s + i] = p + i
            r2s[p + i] = s + i
        else:
            s2r[s + i] = -1


@numba.njit(cache=True)
def _take_run(st, z, zlo, zhi, zt, s, size, max_order, pbo):
    """Isolate [s, s + size): its free blocks leave the lists (parts outside go back), its
    reclaimable pages are dropped, its movable pages migrate out. Returns (reclaimed,
    migrated)."""
    free_order, pcls, smt, s2r, r2s, ctr = st[0], st[8], st[9], st[10], st[11], st[12]
    end = s + size
    q = s
    outside_lo = -1
    outside_hi = -1
    while q < end:
        if pcls[q] == 0:
            h = free_head_of(free_order, q, max_order)
            o = free_order[h]
            hend = h + (np.int64(1) << o)
            del_from_free(st, z, h)
            for x in range(h, hend):
                pcls[x] = 4  # isolated
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
    for q in range(s, end):
        c = pcls[q]
        if c == 1:
            r = s2r[q]
            if r >= 0:
                r2s[r] = -1
            reclaimed += 1
        elif c == 2:
            d, dz = buddy_alloc(st, zlo, zhi, zt, 0, max(smt[q], 0), zt[z], max_order, pbo)
            # find_run checked the zone's free pages outside the run could take them all
            r = s2r[q]
            pcls[d] = 2
            smt[d] = smt[q]
            s2r[d] = r
            if r >= 0:
                r2s[r] = d
            migrated += 1
        pcls[q] = 4
        smt[q] = -1
        s2r[q] = -1
    ctr[9] += reclaimed
    ctr[10] += migrated
    return reclaimed, migrated


@numba.njit(cache=True)
def _free_traced(st, zlo, zhi, p, o, max_order, pbo):
    """Release what the simulator holds for traced pages [p, p + 2^o)."""
    r2s, ctr = st[11], st[12]
    n = np.int64(1) << o
    s0 = r2s[p]
    contiguous = s0 >= 0 and (s0 & (n - 1)) == 0
    if contiguous:
        for i in range(1, n):
            if r2s[p + i] != s0 + i:
                contiguous = False
                break
    if contiguous:
        z = zone_index(zlo, zhi, s0)
        free_range(st, z, zlo[z], zhi[z], s0, n, max_order, pbo)
        for i in range(n):
            r2s[p + i] = -1
        ctr[1] += 1
        return
    any_ = False
    for i in range(n):
        s = r2s[p + i]
        if s >= 0:
            z = zone_index(zlo, zhi, s)
            free_range(st, z, zlo[z], zhi[z], s, 1, max_order, pbo)
            r2s[p + i] = -1
            any_ = True
    if any_:
        ctr[1] += 1
    else:
        ctr[11] += 1


@numba.njit(cache=True)
def replay_simulated(st, cursor, kind, pfn, order, migratetype, pclass, zone_pref, lo, hi,
                     zlo, zhi, ztype, max_order, pbo, searches, policy, grids, egrids,
                     req_slot, r_out, r_cost, r_recl, r_migr, r_false):
    """Replay stream entries [lo, hi) through the simulator, filling request slots."""
    pcls, zfree, r2s, ctr = st[8], st[6], st[11], st[12]
    block = np.int64(1) << max_order
    for i in range(lo, hi):
        p = pfn[i]
        o = order[i]
        if kind[i] != ALLOC:
            _free_traced(st, zlo, zhi, p, o, max_order, pbo)
            continue
        n = np.int64(1) << o
        slot = req_slot[i]
        nr = 0
        nm = 0
        ex = False
        if o <= max_order:
            s, z = buddy_alloc(st, zlo, zhi, ztype, o, migratetype[i], zone_pref[i],
                               max_order, pbo)
            out = OUT_BUDDY if s >= 0 else OUT_FAILED
        else:
            ctr[8] += 1
            s, z, nr, nm, out, ex = memarea_request(
                pcls, zlo, zhi, ztype, zfree, cursor, zone_pref[i], n, grids[o], egrids[o],
                searches, policy, block, r_cost[slot])
            if s >= 0:  # count what was really dropped and moved
                nr, nm = _take_run(st, z, zlo, zhi, ztype, s, n, max_order, pbo)
        if s >= 0:
            _mark_alloc(st, s, n, pclass[i], migratetype[i], p)
        elif p >= 0:
            r2s[p:p + n] = -1  # the traced allocation got nothing here
        if slot >= 0:
            r_out[slot] = out
            r_recl[slot] = nr
            r_migr[slot] = nm
            r_false[slot] = ex


@numba.njit(cache=True)
def sample(st, alo, ahi, max_order, nr_out, long_out):
    """Free blocks per zone/order (buddy counters) and the longest free run per zone (over
    the pages [alo, ahi) that can ever be free)."""
    nr_free, pcls = st[5], st[8]
    for z in range(len(alo)):
        for o in range(min(max_order + 1, nr_out.shape[1])):
            nr_out[z, o] = nr_free[z, o].sum()
        scratch = np.zeros(max_order + 1, np.int64)
        long_out[z] = free_blocks(pcls, alo[z], ahi[z], max_order, scratch)


def new_state(npages: int, nzones: int, max_order: int, stream, pcls0: np.ndarray,
              aorder0: np.ndarray, zlo: np.ndarray, zhi: np.ndarray) -> BuddyState:
    """The simulator at trace start, from the observed initial state."""
    state = BuddyState(npages, nzones, max_order)
    initial_pageblocks(stream.kind, stream.pfn, stream.order, stream.migratetype,
                       state.pb_mt, state.pb_order)
    populate(state.arrays(), pcls0, aorder0, zlo, zhi, max_order, state.pb_order)
    return state
