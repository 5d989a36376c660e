"""Building engine inputs by hand (scenarios) and at random (property tests)."""

from __future__ import annotations

import random

import numpy as np

from replay.engine.context import Context, build_context
from replay.engine.options import SimOptions
from replay.engine.stream import ALLOC, DRAIN, RAW_FREE, TAKE, Stream, build_stream
from replay.engine.world import Snapshots
from replay.kernel import gfp, pagestate
from replay.kernel.procfs import ZoneInfo
from replay.kernel.release import parse_release

ANON = "GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP"  # movable, migratable
KERNEL = "GFP_KERNEL"  # unmovable
SLAB = "GFP_KERNEL|__GFP_RECLAIMABLE"  # reclaimable slab: unmovable for isolation
READAHEAD = "GFP_HIGHUSER_MOVABLE|__GFP_NORETRY|__GFP_NOWARN"  # clean page cache
WRITE = "GFP_HIGHUSER_MOVABLE|__GFP_WRITE"  # page cache about to be dirtied

_KIND = {"alloc": ALLOC, "free": RAW_FREE, "take": TAKE, "drain": DRAIN}


def zone(start: int, pages: int, name: str = "Normal", managed: int | None = None,
         free: int = 0, wmark_min: int = 0, wmark_low: int = 0,
         protection: tuple[int, ...] = ()) -> ZoneInfo:
    return ZoneInfo(0, name, start, pages, pages, pages if managed is None else managed,
                    free, wmark_min, wmark_low, wmark_low, protection)


def snapshots(*zones: ZoneInfo, buddyinfo: dict[str, list[int]] | None = None) -> Snapshots:
    """Snapshots holding only a start zoneinfo (and optionally a start buddyinfo)."""
    return Snapshots(None, start_zoneinfo=list(zones), start_buddyinfo=buddyinfo,
                     files={"start_zoneinfo": "test"})


def make_stream(ops: list[tuple], release: str | None = "6.18") -> Stream:
    """ops: ("alloc", pfn or -1, order, gfp_flags), ("free", pfn, order),
    ("take", pfn, order, migratetype) or ("drain", pfn, order)."""
    kind, pfn, order, mt, zt, cls, folio = [], [], [], [], [], [], []
    for op in ops:
        g = op[3] if op[0] == "alloc" else None
        m = gfp.migratetype(g) if op[0] == "alloc" else (op[3] if op[0] == "take" else 0)
        kind.append(_KIND[op[0]])
        pfn.append(op[1])
        order.append(op[2])
        mt.append(m)
        zt.append(gfp.zone_type(g))
        cls.append(pagestate.request_class(g, m))
        folio.append(gfp.has(g, gfp.COMP_NAMES))
    n = len(ops)
    a = lambda x, t=np.int64: np.array(x, t)  # noqa: E731
    return build_stream(a(kind, np.int8), a(pfn), a(order), a(mt), a(zt), a(cls, np.uint8),
                        a(folio, bool), np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64),
                        parse_release(release))


def context(ops: list[tuple], snaps: Snapshots, **opts) -> Context:
    return build_context(make_stream(ops), snaps, SimOptions(**opts))


def random_ops(seed: int, pages: int, steps: int, max_order: int, pcp: bool = True
               ) -> list[tuple]:
    """A consistent random trace on [0, pages) with the per-CPU layer when `pcp`: order-0
    pages reach callers through TAKE (refill) and go back through frees that a DRAIN later
    returns to the buddy lists; higher orders go straight to and from the buddy lists.
    Every page is first seen free (handed out by the buddy allocator)."""
    rng = random.Random(seed)
    used = [False] * pages
    live: list[tuple[int, int]] = []
    pcp_free: list[int] = []
    ops: list[tuple] = []
    for p in range(0, pages, 1 << max_order):
        ops.append(("alloc", p, max_order, ANON))
        ops.append(("free", p, max_order))
    gfps = (ANON, KERNEL, SLAB, READAHEAD, WRITE)
    for _ in range(steps):
        r = rng.random()
        if pcp and pcp_free and r < 0.15:
            q = pcp_free.pop(rng.randrange(len(pcp_free)))
            used[q] = False
            ops.append(("drain", q, 0))
            continue
        if live and r < 0.5:
            p, o = live.pop(rng.randrange(len(live)))
            ops.append(("free", p, o))
            if pcp and o == 0:
                pcp_free.append(p)  # stays on the per-CPU list until drained
            else:
                for q in range(p, p + (1 << o)):
                    used[q] = False
            continue
        o = rng.choice([0, 0, 0, 1, 2, max_order - 1, max_order])
        size = 1 << o
        g = rng.choice(gfps)
        if pcp and o == 0 and pcp_free and rng.random() < 0.5:
            q = pcp_free.pop(rng.randrange(len(pcp_free)))
            live.append((q, 0))
            ops.append(("alloc", q, 0, g))
            continue
        starts = [s for s in range(0, pages, size) if not any(used[s:s + size])]
        if not starts:
            ops.append(("alloc", -1, o, g))
            continue
        s = rng.choice(starts)
        for q in range(s, s + size):
            used[q] = True
        live.append((s, o))
        if pcp and o == 0:
            ops.append(("take", s, 0, gfp.migratetype(g)))
        ops.append(("alloc", s, o, g))
    return ops
