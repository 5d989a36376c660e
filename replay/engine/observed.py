"""Observed mode: page-exact occupancy replayed from the trace, memarea judged in it.

Initial state (DESIGN §6): a page whose first event is a free was allocated before the
trace (class PINNED: its gfp is unknown); whose first event is an allocation was free;
never seen is *unknown*: taken from the start `kpageflags` snapshot of `replay record
--kpageflags` when there is one (a free buddy page is free, any other allocated),
otherwise allocated (PINNED) by default, free with `--unknown free`. buddyinfo snapshots
give counts, not locations: they serve the fidelity comparison.

Inconsistencies are counted, never fatal: a double allocation (an allocation over pages
already allocated), a free of a free page, an order mismatch (a free whose order differs
from the allocation at that pfn, or that frees part of an allocation: split_page() users
such as alloc_pages_exact() free the pieces of one allocation one by one).

For every request above the candidate max order N, memarea is asked, in the real state
just before the request, for a run under the configuration's search and policy; the real
state is not changed by the answer (the trace says what happened next).
"""

from __future__ import annotations

import numba
import numpy as np

from replay.engine.memarea import find_run, run_classes, run_exists
from replay.engine.measures import free_blocks
from replay.engine.stream import ALLOC

#: Indices of the inconsistency counters.
DOUBLE_ALLOC, FREE_OF_FREE, ORDER_MISMATCH = 0, 1, 2
INCONSISTENCIES = ("double_alloc", "free_of_free", "order_mismatch")

#: Request outcomes (column `outcome`).
OUTCOMES = ("buddy", "memarea_free", "memarea_reclaim", "memarea_migrate", "failed")
OUT_BUDDY, OUT_FREE, OUT_RECLAIM, OUT_MIGRATE, OUT_FAILED = range(5)

#: The largest order kept in free-block counts and series (the traced kernel's).
SERIES_ORDERS = 11

FIRST_UNSEEN, FIRST_ALLOC, FIRST_FREE = 0, 1, 2


@numba.njit(cache=True)
def initial_state(kind, pfn, order, npages, unknown_free, zlo, zhi, snap_free):
    """Page classes and allocation orders at trace start; counts (free, pretrace, unknown).

    A never-seen page is free when `snap_free` (a start snapshot, one flag per pfn; empty
    when there is none) says so and allocated otherwise; pages the snapshot does not
    cover follow `unknown_free`. Pages outside every zone are PINNED whatever
    `unknown_free` says.
    """
    first = np.zeros(npages, np.uint8)
    aorder = np.full(npages, -1, np.int8)
    for i in range(len(kind)):
        p = pfn[i]
        if p < 0:
            continue
        n = np.int64(1) << order[i]
        if first[p] == FIRST_UNSEEN and kind[i] != ALLOC:
            aorder[p] = order[i]  # allocated before the trace, freed here
        for q in range(p, p + n):
            if first[q] == FIRST_UNSEEN:
                first[q] = FIRST_ALLOC if kind[i] == ALLOC else FIRST_FREE
    pcls = np.full(npages, 3, np.uint8)
    counts = np.zeros(3, np.int64)
    for z in range(len(zlo)):
        for q in range(zlo[z], min(zhi[z], npages)):
            f = first[q]
            if f == FIRST_ALLOC:
                pcls[q] = 0
                counts[0] += 1
            elif f == FIRST_FREE:
                counts[1] += 1
            else:
                counts[2] += 1
                if q < len(snap_free):
                    if snap_free[q]:
                        pcls[q] = 0
                elif unknown_free:
                    pcls[q] = 0
    return pcls, aorder, counts


@numba.njit(cache=True)
def zone_index(zlo, zhi, p):
    """The zone holding pfn p, -1 if none."""
    for z in range(len(zlo)):
        if zlo[z] <= p < zhi[z]:
            return z
    return -1


@numba.njit(cache=True)
def apply_alloc(pcls, aorder, zfree, zlo, zhi, p, o, cls, bad):
    """Mark [p, p + 2^o) allocated with class `cls`; count a double allocation."""
    n = np.int64(1) << o
    z = zone_index(zlo, zhi, p)
    double = False
    for q in range(p, p + n):
        if pcls[q] != 0:
            double = True
        elif z >= 0:
            zfree[z] -= 1
        pcls[q] = cls
    if double:
        bad[0] += 1
    aorder[p] = o


@numba.njit(cache=True)
def apply_free(pcls, aorder, zfree, zlo, zhi, p, o, bad):
    """Mark [p, p + 2^o) free; count a free of a free page or an order mismatch."""
    n = np.int64(1) << o
    z = zone_index(zlo, zhi, p)
    if aorder[p] != o and pcls[p] != 0:
        bad[2] += 1
    freed = 0
    for q in range(p, p + n):
        if pcls[q] != 0:
            pcls[q] = 0
            freed += 1
    if freed == 0:
        bad[1] += 1
    if z >= 0:
        zfree[z] += freed
    aorder[p] = -1


@numba.njit(cache=True)
def zone_free_pages(pcls, zlo, zhi):
    out = np.zeros(len(zlo), np.int64)
    for z in range(len(zlo)):
        for q in range(zlo[z], zhi[z]):
            if pcls[q] == 0:
                out[z] += 1
    return out


@numba.njit(cache=True)
def memarea_request(pcls, zlo, zhi, ztype, zfree, cursor, pref, size, grid, egrid, searches,
                    policy, block, costs):
    """Ask memarea for `size` pages in the zonelist of zone type `pref`.

    The cheapest way first: a free run anywhere in the zonelist, then (policy permitting)
    one needing reclaim, then one needing migration; the outcome names the step that
    succeeded. `searches[0]` decides; the other searches (on the same candidate grid, so
    they find the same run) only add their cost: `costs[j]` is what `searches[j]` spent.
    Returns (start, zone, reclaimed, migrated, outcome, false_failure). The cursor of the
    zone that served the request moves past the run.
    """
    costs[:] = 0
    for level in range(policy + 1):
        for z in range(len(zlo) - 1, -1, -1):
            if ztype[z] > pref:
                continue
            for j in range(1, len(searches)):
                _, c = find_run(pcls, zlo[z], zhi[z], size, grid[0], grid[1], cursor[z],
                                searches[j], level, block, zfree[z])
                costs[j] += c
            s, c = find_run(pcls, zlo[z], zhi[z], size, grid[0], grid[1], cursor[z],
                            searches[0], level, block, zfree[z])
            costs[0] += c
            if s >= 0:
                cursor[z] = s + size
                nf, nr, nm = run_classes(pcls, s, size)
                return s, z, nr, nm, 1 + level, False
    exists = False
    for z in range(len(zlo)):
        if ztype[z] <= pref and run_exists(pcls, zlo[z], zhi[z], size, egrid[0], egrid[1],
                                           zfree[z]):
            exists = True
            break
    return -1, -1, 0, 0, 4, exists


@numba.njit(cache=True)
def replay_observed(kind, pfn, order, pclass, zone_pref, pcls, aorder, zlo, zhi, ztype,
                    max_order, searches, policy, grids, egrids, req_slot, r_out, r_cost,
                    r_recl, r_migr, r_false, sample_every, alo, ahi, ser_nr, ser_long,
                    ser_at):
    """Replay the stream over (pcls, aorder), answering memarea for requests above max_order.

    Per request slot: outcome, cost per search, pages reclaimed, pages migrated, false
    failure.
    With sample_every > 0, also fills the series (free blocks per zone/order as a fully
    coalesced buddy would hold them, longest free run) every `sample_every` events and at
    the end, over the pages [alo, ahi) of each zone that can ever be free. Returns the
    inconsistency counters.
    """
    bad = np.zeros(3, np.int64)
    zfree = zone_free_pages(pcls, zlo, zhi)
    cursor = zlo.copy()
    block = np.int64(1) << max_order
    nz = len(zlo)
    k = 0
    n = len(kind)
    for i in range(n + 1):
        if sample_every > 0 and (i % sample_every == 0 or i == n) and k < len(ser_at):
            ser_at[k] = i
            for z in range(nz):
                ser_long[k, z] = free_blocks(pcls, alo[z], ahi[z], ser_nr.shape[2] - 1,
                                             ser_nr[k, z])
            k += 1
        if i == n:
            break
        p = pfn[i]
        o = order[i]
        if kind[i] == ALLOC:
            slot = req_slot[i]
            if slot >= 0:
                s, z, nr, nm, out, ex = memarea_request(
                    pcls, zlo, zhi, ztype, zfree, cursor, zone_pref[i], np.int64(1) << o,
                    grids[o], egrids[o], searches, policy, block, r_cost[slot])
                r_out[slot] = out
                r_recl[slot] = nr
                r_migr[slot] = nm
                r_false[slot] = ex
            if p >= 0:
                apply_alloc(pcls, aorder, zfree, zlo, zhi, p, o, pclass[i], bad)
        else:
            apply_free(pcls, aorder, zfree, zlo, zhi, p, o, bad)
    return bad
