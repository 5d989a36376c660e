"""The memarea model: searching a zone for a contiguous run, per search strategy and policy.

The 2001 `alloc_memarea()` thread (seeds/000) names the options modelled here:

- searches: `linear` walks the zone's pages from a cursor (cost: pages inspected; the
  worst case is every page of the zone); `coalesced` assumes buddies are coalesced and
  walks only max-order blocks (cost: blocks visited); `bitmap` reads a page-granular free
  bitmap (cost: 64-bit words read);
- alignment and offset: a run starts at `s` with `s % align == offset` (default: aligned
  to the request size, as buddy blocks are);
- policies: `free` (every page free in the buddy lists or on a per-CPU list, which a
  contiguous allocator drains), `reclaim` (may also drop page cache: clean at once, dirty
  after a writeback), `migrate` (may also move movable pages, each needing a free page
  outside the run). Policies nest; the classes are replay/kernel/pagestate.py's.

All three searches scan the same candidate runs in the same order (address order from the
zone's cursor, wrapping once) and return the first usable one, so under one policy they
agree on success and differ only in cost -- except `coalesced`, which sees only runs made
of whole max-order blocks: with an alignment that cuts such blocks it misses runs that
exist (a false failure). Pages are judged from a per-page class array: a page is usable
under policy `p` when its class is at most `pagestate.POLICY_MAX_CLASS[p]`.
"""

from __future__ import annotations

import math

import numpy as np

from replay.engine.compiled import njit_noalloc
from replay.kernel.pagestate import DIRTY, PCP, POLICIES, POLICY_MAX_CLASS

SEARCHES = ("linear", "coalesced", "bitmap")
LINEAR, COALESCED, BITMAP = 0, 1, 2
POLICY_FREE, POLICY_RECLAIM, POLICY_MIGRATE = range(len(POLICIES))

#: Bits per bitmap word.
WORD = 64


def coalesced_grid(align: int, offset: int, block: int) -> tuple[int, int]:
    """(step, first) of the candidate starts that are also `block`-aligned, or (0, 0).

    Starts must satisfy s % align == offset % align and s % block == 0.
    """
    step = align * block // math.gcd(align, block)
    for t in range(0, step, block):
        if t % align == offset % align:
            return step, t
    return 0, 0


@njit_noalloc
def _first_at_or_after(x, step, first):
    """The smallest s >= x with s % step == first % step."""
    r = (first - x) % step
    return x + r


@njit_noalloc
def _scan(pcls, hi, size, step, first, frm, to, search, policy, block):
    """First usable run starting in [frm, to) on the grid (step, first); returns (start, cost).

    start is -1 when none. The run must end by `hi`.
    """
    cost = 0
    maxc = POLICY_MAX_CLASS[policy]
    s = _first_at_or_after(frm, step, first)
    while s < to and s + size <= hi:
        bad = -1
        if search == LINEAR:  # page by page
            q = s
            while q < s + size:
                cost += 1
                if pcls[q] > maxc:
                    bad = q
                    break
                q += 1
        elif search == BITMAP:  # one word per 64 pages; the last unusable bit skips most
            w = s
            while w < s + size:
                wend = min((w // 64 + 1) * 64, s + size)
                cost += 1
                q = wend - 1
                while q >= w:
                    if pcls[q] > maxc:
                        bad = q
                        break
                    q -= 1
                if bad >= 0:
                    break
                w = wend
        else:  # coalesced: one visit per max-order block
            b = s
            while b < s + size:
                ok = True
                for q in range(b, b + block):
                    if pcls[q] > maxc:
                        ok = False
                        break
                if policy > 0 or ok:
                    cost += 1  # a free block is on the order-N free list; others inspected
                if not ok:
                    bad = b + block - 1
                    break
                b += block
        if bad < 0:
            return s, cost
        s = _first_at_or_after(bad + 1, step, first)
    return -1, cost


@njit_noalloc
def run_classes(pcls, start, size):
    """(free, reclaimable, movable) pages in [start, start + size): free in the buddy lists
    or on per-CPU lists, page cache (clean or dirty), movable."""
    nf = 0
    nr = 0
    nm = 0
    for q in range(start, start + size):
        c = pcls[q]
        if c <= PCP:
            nf += 1
        elif c <= DIRTY:
            nr += 1
        elif c <= POLICY_MAX_CLASS[POLICY_MIGRATE]:
            nm += 1
    return nf, nr, nm


@njit_noalloc
def find_run(pcls, lo, hi, size, step, first, cursor, search, policy, block, zone_free):
    """Search one zone [lo, hi) from `cursor`, wrapping once; returns (start, cost).

    Under `migrate` a run is usable only when the free pages outside it can take its
    movable pages; a run failing that is skipped and the search goes on.
    """
    if step == 0:
        return -1, 0
    if cursor < lo or cursor >= hi:
        cursor = lo
    cost = 0
    frm = cursor
    to = hi
    for _ in range(2):
        while True:
            s, c = _scan(pcls, hi, size, step, first, frm, to, search, policy, block)
            cost += c
            if s < 0:
                break
            if policy == POLICY_MIGRATE:
                nf, nr, nm = run_classes(pcls, s, size)
                if nm > zone_free - nf:
                    frm = s + 1
                    continue
            return s, cost
        frm = lo
        to = cursor
    return -1, cost


@njit_noalloc
def run_exists(pcls, lo, hi, size, step, first, zone_free):
    """Whether any run of free-or-freeable pages (the `migrate` policy) exists in [lo, hi)."""
    s, _ = find_run(pcls, lo, hi, size, step, first, lo, np.int64(LINEAR),
                    np.int64(POLICY_MIGRATE), np.int64(1), zone_free)  # find_run's types
    return s >= 0


def grid(align: int, offset: int, order: int, search: int, max_order: int) -> tuple[int, int]:
    """(step, first) of a request's candidate starts under the options; (0, 0) if none."""
    a = align if align > 0 else 1 << order
    if search == COALESCED:
        return coalesced_grid(a, offset, 1 << max_order)
    return a, offset % a


def request_grids(orders: np.ndarray, align: int, offset: int, search: int,
                  max_order: int) -> np.ndarray:
    """(step, first) per request order 0..max(orders), as an int64 array [order, 2]."""
    top = int(orders.max()) if len(orders) else 0
    out = np.zeros((max(top, 0) + 1, 2), dtype=np.int64)
    for k in range(top + 1):
        out[k] = grid(align, offset, k, search, max_order)
    return out
