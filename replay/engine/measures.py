"""Fragmentation measures with the kernel's own formulas (mm/vmstat.c), and free-run sizes.

From a zone's free block counts `nr_free[j]` (per-CPU pages excluded, as /proc/buddyinfo):
`blocks = Σ nr_free[j]`, `free = Σ nr_free[j]·2^j`, `suitable(k) = Σ_{j≥k} nr_free[j]·2^(j−k)`.
The unusable free space index (unusable_free_index) and the fragmentation index
(__fragmentation_index) are returned in thousandths with the kernel's integer division.
Unlike the kernel, orders above the max order are evaluated too (suitable = 0 there): the
counterfactual is about exactly those requests.
"""

from __future__ import annotations

import numpy as np

from replay.engine.compiled import njit_noalloc


def _contig_info(nr_free: np.ndarray, order: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """fill_contig_page_info(): (blocks, free pages, blocks suitable for `order`) of each
    zone of `nr_free` (free block counts, the orders on its last axis)."""
    shifts = np.arange(nr_free.shape[-1])
    blocks = nr_free.sum(axis=-1)
    free = (nr_free << shifts).sum(axis=-1)
    above = nr_free[..., order:]  # orders >= `order`, counted in blocks of `order`
    suitable = (above << shifts[:above.shape[-1]]).sum(axis=-1)
    return blocks, free, suitable


def unusable_free_index(nr_free: np.ndarray, order: int) -> np.ndarray:
    """unusable_free_index(): thousandths of the free pages in blocks too small for `order`
    (per zone of `nr_free`, int64; 1000 for a zone with no free page)."""
    _, free, suitable = _contig_info(np.asarray(nr_free, np.int64), order)
    return np.where(free == 0, 1000,
                    (free - (suitable << order)) * 1000 // np.maximum(free, 1))


def fragmentation_index(nr_free: np.ndarray, order: int) -> np.ndarray:
    """__fragmentation_index(): -1000 if `order` would succeed; near 0 lack of memory,
    near 1000 fragmentation (per zone of `nr_free`, int64; 0 for a zone with no free
    block)."""
    blocks, free, suitable = _contig_info(np.asarray(nr_free, np.int64), order)
    index = 1000 - (1000 + free * 1000 // (1 << order)) // np.maximum(blocks, 1)
    return np.where(blocks == 0, 0, np.where(suitable > 0, -1000, index))


#: Bytes of pcls read as one word when skipping runs of one kind (used or free).
_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)


@njit_noalloc
def free_blocks(pcls, lo, hi, max_order, nr_free):
    """Add to `nr_free[0..max_order]` the blocks a fully coalesced buddy would hold for the
    free pages (class 0) of [lo, hi); return the longest free run (pages).

    Blocks are aligned on absolute pfns, as the kernel's buddies are. The page classes
    are read 8 at a time where a whole aligned word is used or free (the sweep samples
    every zone page 64 times per replay).
    """
    words = pcls[:len(pcls) // 8 * 8].view(np.uint64)
    longest = 0
    p = lo
    while p < hi:
        if pcls[p] != 0:
            if p & 7 == 0:  # skip words with no free page (no zero byte)
                while p + 8 <= hi and ((words[p >> 3] - _ONES) & ~words[p >> 3] & _HIGHS) == 0:
                    p += 8
                if p >= hi or pcls[p] == 0:
                    continue
            p += 1
            continue
        e = p
        while e < hi and pcls[e] == 0:
            e += 1
            if e & 7 == 0:  # skip words of free pages
                while e + 8 <= hi and words[e >> 3] == 0:
                    e += 8
        if e - p > longest:
            longest = e - p
        q = p
        while q < e:  # the largest aligned block at q that fits (most runs are short)
            o = 0
            while o < max_order and (q >> (o + 1) << (o + 1)) == q and q + (2 << o) <= e:
                o += 1
            nr_free[o] += 1
            q += 1 << o
        p = e
    return longest


def indices(nr_free: np.ndarray, orders: int) -> tuple[np.ndarray, np.ndarray]:
    """(unusable, fragmentation) index in thousandths for orders 0..orders-1, on a new
    last axis after the zones of `nr_free` (free block counts, orders on the last axis)."""
    nr = np.asarray(nr_free, np.int64)
    return (np.stack([unusable_free_index(nr, k) for k in range(orders)], axis=-1),
            np.stack([fragmentation_index(nr, k) for k in range(orders)], axis=-1))
