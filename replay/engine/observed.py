"""Observed mode: page-exact occupancy replayed from the trace; memarea's cost measured in it.

Every page is in the class the events put it in (replay/kernel/pagestate.py): free in the
buddy lists, on a per-CPU list, or allocated with its class; the world's initial state is
`world.build_world`'s. For every request above the candidate max order N, memarea searches
the real state just before the request, and the state is not changed by the answer (the
trace says what happened next). A successful request's own run is free just before it by
construction (75 of 75 checked on a real trace), so observed outcomes are no evidence of
feasibility: observed mode measures what memarea would inspect, reclaim and migrate — its
cost — and every output says so (`EVIDENCE`).

Inconsistencies are counted, never fatal: a double allocation, a free of a free page, an
order mismatch (a free of part of an allocation: split_page() users free the pieces one
by one), and a per-CPU mismatch (a block handed out by the buddy allocator that was not
free in its lists, or a drained page that was not on a per-CPU list).
"""

from __future__ import annotations

import numba
import numpy as np

from replay.engine.compiled import njit_noalloc
from replay.engine.measures import free_blocks
from replay.engine.memarea import find_run, run_classes, run_exists
from replay.engine.stream import ALLOC, DRAIN, FREE_BUDDY, FREE_PCP, ONLINE, TAKE
from replay.kernel.pagestate import BUDDY, OUTSIDE, PCP

#: What observed mode's outcomes can show.
EVIDENCE = "cost only: a traced request's run is free just before it by construction"

#: Indices of the inconsistency counters.
INCONSISTENCIES = ("double_alloc", "free_of_free", "order_mismatch", "pcp_mismatch")
DOUBLE_ALLOC, FREE_OF_FREE, ORDER_MISMATCH, PCP_MISMATCH = range(len(INCONSISTENCIES))

#: Request outcomes (column `outcome`).
OUTCOMES = ("buddy", "memarea_free", "memarea_reclaim", "memarea_migrate", "failed")
OUT_BUDDY, OUT_FREE, OUT_RECLAIM, OUT_MIGRATE, OUT_FAILED = range(len(OUTCOMES))

#: The orders kept in free-block counts and series (0..the traced kernel's max order).
SERIES_ORDERS = 11


@njit_noalloc
def zone_index(zlo, zhi, p):
    """The zone holding pfn p, -1 if none."""
    for z in range(len(zlo)):
        if zlo[z] <= p < zhi[z]:
            return z
    return -1


@njit_noalloc
def apply_alloc(pcls, aorder, zfree, z, p, o, cls, bad):
    """A caller gets [p, p + 2^o) (from the buddy lists or a per-CPU list)."""
    double = False
    for q in range(p, p + (np.int64(1) << o)):
        c = pcls[q]
        if c > PCP:
            double = True
        elif c == BUDDY and z >= 0:
            zfree[z] -= 1
        pcls[q] = cls
    if double:
        bad[DOUBLE_ALLOC] += 1
    aorder[p] = o


@njit_noalloc
def apply_free(pcls, aorder, zfree, z, p, o, to, bad):
    """A caller gives [p, p + 2^o) back, onto a per-CPU list or the buddy lists (`to`)."""
    if aorder[p] != o and pcls[p] > PCP:
        bad[ORDER_MISMATCH] += 1
    freed = 0
    for q in range(p, p + (np.int64(1) << o)):
        if pcls[q] > PCP and pcls[q] != OUTSIDE:
            pcls[q] = to
            freed += 1
            if to == BUDDY and z >= 0:
                zfree[z] += 1
    if freed == 0:
        bad[FREE_OF_FREE] += 1
    aorder[p] = -1


@njit_noalloc
def apply_move(pcls, zfree, z, p, o, frm, to, bad):
    """Pages move between the buddy lists and a per-CPU list (TAKE, DRAIN, ONLINE)."""
    wrong = False
    for q in range(p, p + (np.int64(1) << o)):
        if pcls[q] != frm:
            wrong = True
        if pcls[q] == frm or frm == OUTSIDE:
            pcls[q] = to
            if z >= 0:
                zfree[z] += (to == BUDDY) - (frm == BUDDY)
    if wrong and frm != OUTSIDE:
        bad[PCP_MISMATCH] += 1


@numba.njit(cache=True)
def zone_free_pages(pcls, zlo, zhi):
    out = np.zeros(len(zlo), np.int64)
    for z in range(len(zlo)):
        for q in range(zlo[z], zhi[z]):
            if pcls[q] == BUDDY:
                out[z] += 1
    return out


@njit_noalloc
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
                return s, z, nr, nm, OUT_FREE + level, False
    exists = False
    for z in range(len(zlo)):
        if ztype[z] <= pref and run_exists(pcls, zlo[z], zhi[z], size, egrid[0], egrid[1],
                                           zfree[z]):
            exists = True
            break
    return -1, -1, 0, 0, OUT_FAILED, exists


def replay_observed(kind, pfn, order, pclass, zone_pref, pcls, aorder, zlo, zhi, ztype,
                    max_order, searches, policy, grids, egrids, req_slot, r_out, r_cost,
                    r_recl, r_migr, r_false, sample_every, ser_nr, ser_long, ser_at
                    ) -> np.ndarray:
    """Replay the stream over (pcls, aorder), asking memarea for requests above max_order.

    Per request slot: outcome, cost per search, pages reclaimed, pages migrated, false
    failure. With sample_every > 0, also fills the series (free blocks per zone/order of
    the buddy lists as a fully coalesced buddy allocator holds them, longest free run)
    every `sample_every` entries and at the end. Returns the inconsistency counters.
    """
    bad = np.zeros(len(INCONSISTENCIES), np.int64)
    observe_entries(kind, pfn, order, pclass, zone_pref, pcls, aorder, zlo, zhi, ztype,
                    max_order, searches, policy, grids, egrids, req_slot, r_out, r_cost,
                    r_recl, r_migr, r_false, sample_every, ser_nr, ser_long, ser_at,
                    zone_free_pages(pcls, zlo, zhi), zlo.copy(), bad)
    return bad


@njit_noalloc
def observe_entries(kind, pfn, order, pclass, zone_pref, pcls, aorder, zlo, zhi, ztype,
                    max_order, searches, policy, grids, egrids, req_slot, r_out, r_cost,
                    r_recl, r_migr, r_false, sample_every, ser_nr, ser_long, ser_at, zfree,
                    cursor, bad):
    """`replay_observed`'s loop, over its zones' free pages `zfree`, memarea's search
    cursors and the inconsistency counters `bad`, which it updates."""
    block = np.int64(1) << max_order
    nz = len(zlo)
    k = 0
    n = len(kind)
    for i in range(n + 1):
        if sample_every > 0 and (i % sample_every == 0 or i == n) and k < len(ser_at):
            ser_at[k] = i
            for z in range(nz):
                ser_long[k, z] = free_blocks(pcls, zlo[z], zhi[z], ser_nr.shape[2] - 1,
                                             ser_nr[k, z])
            k += 1
        if i == n:
            break
        p = pfn[i]
        o = order[i]
        e = kind[i]
        z = zone_index(zlo, zhi, p) if p >= 0 else -1
        if e == ALLOC:
            slot = req_slot[i]
            if slot >= 0:
                s, zz, nr, nm, out, ex = memarea_request(
                    pcls, zlo, zhi, ztype, zfree, cursor, zone_pref[i], np.int64(1) << o,
                    grids[o], egrids[o], searches, policy, block, r_cost[slot])
                r_out[slot] = out
                r_recl[slot] = nr
                r_migr[slot] = nm
                r_false[slot] = ex
            if p >= 0:
                apply_alloc(pcls, aorder, zfree, z, p, o, pclass[i], bad)
        elif e == FREE_PCP:
            apply_free(pcls, aorder, zfree, z, p, o, PCP, bad)
        elif e == FREE_BUDDY:
            apply_free(pcls, aorder, zfree, z, p, o, BUDDY, bad)
        elif e == TAKE:
            apply_move(pcls, zfree, z, p, o, BUDDY, PCP, bad)
        elif e == DRAIN:
            apply_move(pcls, zfree, z, p, o, PCP, BUDDY, bad)
        elif e == ONLINE:
            apply_move(pcls, zfree, z, p, o, OUTSIDE, BUDDY, bad)
