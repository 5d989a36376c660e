"""Building engine streams by hand (scenarios) and at random (property tests)."""

from __future__ import annotations

import random

import numpy as np

from replay.engine.layout import Layout, Zone
from replay.engine.stream import ALLOC, FREE, Stream, gfp_migratetype, gfp_zone, page_class

ANON = "GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP"  # movable, migratable
KERNEL = "GFP_KERNEL"  # unmovable
SLAB = "GFP_KERNEL|__GFP_RECLAIMABLE"  # reclaimable
READAHEAD = "GFP_HIGHUSER_MOVABLE|__GFP_NORETRY|__GFP_NOWARN"  # page cache


def zone_layout(start: int, pages: int) -> Layout:
    return Layout((Zone(0, "Normal", start, pages, pages),), "test")


def make_stream(ops: list[tuple]) -> Stream:
    """ops: ("alloc", pfn or -1, order, gfp_flags) or ("free", pfn, order)."""
    kind, pfn, order, mt, zone, cls = [], [], [], [], [], []
    for op in ops:
        gfp = op[3] if op[0] == "alloc" else None
        m = gfp_migratetype(gfp)
        kind.append(ALLOC if op[0] == "alloc" else FREE)
        pfn.append(op[1])
        order.append(op[2])
        mt.append(m)
        zone.append(gfp_zone(gfp))
        cls.append(page_class(gfp, m))
    n = len(ops)
    return Stream(kind=np.array(kind, np.int8), pfn=np.array(pfn, np.int64),
                  order=np.array(order, np.int64), migratetype=np.array(mt, np.int64),
                  zone_type=np.array(zone, np.int64), pclass=np.array(cls, np.uint8),
                  ts_ns=np.arange(n, dtype=np.int64), row=np.arange(n, dtype=np.int64),
                  extfrag=0, batched_ignored=0, events=n)


def random_ops(seed: int, pages: int, steps: int, max_order: int) -> list[tuple]:
    """A consistent random trace on [0, pages): allocations at free aligned blocks (failed
    when none), frees of live allocations; every page is first seen free."""
    rng = random.Random(seed)
    used = [False] * pages
    live: list[tuple[int, int]] = []
    ops: list[tuple] = []
    # make every page known free at trace start, as the observed state would find it
    for p in range(0, pages, 1 << max_order):
        ops.append(("alloc", p, max_order, ANON))
        ops.append(("free", p, max_order))
    gfps = (ANON, KERNEL, SLAB, READAHEAD)
    for _ in range(steps):
        if live and rng.random() < 0.45:
            p, o = live.pop(rng.randrange(len(live)))
            for q in range(p, p + (1 << o)):
                used[q] = False
            ops.append(("free", p, o))
            continue
        o = rng.choice([0, 0, 0, 1, 2, max_order - 1, max_order])
        size = 1 << o
        starts = [s for s in range(0, pages, size) if not any(used[s:s + size])]
        gfp = rng.choice(gfps)
        if not starts:
            ops.append(("alloc", -1, o, gfp))
            continue
        s = rng.choice(starts)
        for q in range(s, s + size):
            used[q] = True
        live.append((s, o))
        ops.append(("alloc", s, o, gfp))
    return ops
