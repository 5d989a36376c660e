"""Plain-Python checks of the simulator's invariants (behind `--check`, and in tests).

The compiled replay assumes a well-formed state; `validate_buddy` checks it the slow, obvious
way and raises one `ValidationError` naming the first broken invariant.
"""

from __future__ import annotations

import numpy as np

from replay.engine.buddy import BuddyState
from replay.engine.measures import free_blocks
from replay.engine.simulated import longest_free_run


class ValidationError(Exception):
    """A broken invariant of the simulated buddy allocator."""


def validate_buddy(state: BuddyState, zlo: np.ndarray, zhi: np.ndarray) -> None:
    """Free lists well linked and counted, blocks aligned, inside their zone, not
    overlapping, exactly the free pages, no two free buddies left unmerged below the max
    order, the longest free run walked by blocks equal to the page scan's, and the
    traced-to-simulated page maps inverse of each other."""
    n_max = state.max_order
    covered = np.zeros(len(state.pcls), dtype=bool)
    for z in range(len(zlo)):
        zone_pages = 0
        for o in range(n_max + 1):
            for mt in range(3):
                p = int(state.heads[z, o, mt])
                prev = -1
                count = 0
                while p >= 0:
                    where = f"zone {z} order {o} migratetype {mt} block {p:#x}"
                    if int(state.prv[p]) != prev:
                        raise ValidationError(f"{where}: back link {state.prv[p]} != {prev}")
                    if int(state.free_order[p]) != o or int(state.fmt[p]) != mt:
                        raise ValidationError(f"{where}: head says order "
                                              f"{state.free_order[p]} list {state.fmt[p]}")
                    if p % (1 << o):
                        raise ValidationError(f"{where}: not aligned to its order")
                    if p < zlo[z] or p + (1 << o) > zhi[z]:
                        raise ValidationError(f"{where}: outside its zone")
                    if covered[p:p + (1 << o)].any():
                        raise ValidationError(f"{where}: overlaps another free block")
                    covered[p:p + (1 << o)] = True
                    if (state.pcls[p:p + (1 << o)] != 0).any():
                        raise ValidationError(f"{where}: holds pages not marked free")
                    if o < n_max:
                        b = p ^ (1 << o)
                        if zlo[z] <= b and b + (1 << o) <= zhi[z] and state.free_order[b] == o:
                            raise ValidationError(f"{where}: free buddy {b:#x} not merged")
                    count += 1
                    if count > len(state.pcls):
                        raise ValidationError(f"{where}: list loops")
                    prev = p
                    p = int(state.nxt[p])
                if count != state.nr_free[z, o, mt]:
                    raise ValidationError(f"zone {z} order {o} migratetype {mt}: {count} "
                                          f"blocks listed, nr_free says {state.nr_free[z, o, mt]}")
                zone_pages += count << o
        if zone_pages != state.zfree[z]:
            raise ValidationError(f"zone {z}: {zone_pages} free pages listed, "
                                  f"counter says {state.zfree[z]}")
        walked = longest_free_run(state.arrays(), z, zlo[z], zhi[z], n_max)
        scanned = free_blocks(state.pcls, zlo[z], zhi[z], n_max, np.zeros(n_max + 1, np.int64))
        if walked != scanned:
            raise ValidationError(f"zone {z}: longest free run walked {walked}, "
                                  f"scanned {scanned}")
    free_pages = state.pcls == 0
    stray = np.flatnonzero(free_pages & ~covered)
    if len(stray):
        raise ValidationError(f"page {stray[0]:#x} marked free but on no free list")
    heads = np.flatnonzero(state.free_order >= 0)
    unlisted = heads[~covered[heads]]
    if len(unlisted):
        raise ValidationError(f"page {unlisted[0]:#x} has a free order but is on no list")
    mapped = np.flatnonzero(state.r2s >= 0)
    back = state.s2r[state.r2s[mapped]]
    if (back != mapped).any():
        r = mapped[np.flatnonzero(back != mapped)[0]]
        raise ValidationError(f"traced page {r:#x} maps to {state.r2s[r]:#x} which maps back "
                              f"to {state.s2r[state.r2s[r]]}")
    if free_pages[state.r2s[mapped]].any():
        r = mapped[np.flatnonzero(free_pages[state.r2s[mapped]])[0]]
        raise ValidationError(f"traced page {r:#x} maps to free page {state.r2s[r]:#x}")
