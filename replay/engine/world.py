"""The engine's world at trace start: each zone's managed memory and every page's state.

The world is the memory the buddy allocator manages (zoneinfo `managed`), not only the
pages the trace touched. A page the trace touches starts as its first event says: handed
out by the buddy allocator first (zone_locked) means free in the buddy lists; drained or
allocated from a per-CPU list first means on a per-CPU list; freed first means allocated
before the trace. The pages it never touches come from, in order of preference:

1. a start `kpageflags` image (replay record --kpageflags): each page's flags;
2. the start `buddyinfo` / `pagetypeinfo` / `zoneinfo`: an ESTIMATE. Managed memory is
   placed in whole memory sections (those the trace touched first, then upwards), the
   free blocks per order and migratetype of the start buddyinfo are seeded into the
   untouched ranges (blocks holding pages the trace saw free first), and the rest is
   allocated: pageblocks typed in pagetypeinfo's proportions, movable ones holding
   anonymous / clean / dirty page cache in the zone's LRU proportions (zoneinfo
   nr_zone_*), the others pinned;
3. nothing: only the pages the trace touched exist (the world is too small; said so).

Memory onlined during the trace (end `managed` above start `managed`; the kernel frees
each new max-order block: __free_pages_core) enters the world at its first free: those
frees become ONLINE entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from replay.engine.layout import Layout, inferred_layout, zoneinfo_layout
from replay.engine.measures import free_blocks
from replay.engine.stream import (
    ALLOC,
    DRAIN,
    FREE_BUDDY,
    FREE_PCP,
    ONLINE,
    TAKE,
    Stream,
    TracedFallbacks,
)
from replay.kernel import migratetypes, orders, pagestate, procfs, tracepoints
from replay.kernel.procfs import PageTypeInfo, ZoneInfo
from replay.kernel.zones import PAGES_PER_SECTION

#: States while the world is built (per pfn).
W_UNSEEN, W_FREE, W_BUSY, W_OUT = 0, 1, 2, 3
#: Orders kept in block counts (0..x86-64's MAX_PAGE_ORDER; a lower traced max order
#: leaves the top ones zero).
NORDERS = orders.KERNEL_MAX_ORDER + 1


@dataclass(frozen=True)
class Snapshots:
    """The /proc snapshots of a trace, parsed (None where absent)."""

    directory: Path | None
    start_zoneinfo: list[ZoneInfo] | None = None
    end_zoneinfo: list[ZoneInfo] | None = None
    start_buddyinfo: dict[str, list[int]] | None = None
    end_buddyinfo: dict[str, list[int]] | None = None
    start_pagetypeinfo: PageTypeInfo | None = None
    end_pagetypeinfo: PageTypeInfo | None = None
    kpageflags: Path | None = None
    files: dict[str, str] = field(default_factory=dict)


def load_snapshots(directory: Path | None, kpageflags_name: str, zoneinfo: Path | None = None,
                   required: bool = False) -> Snapshots:
    """Parse what `directory` holds; `zoneinfo` overrides its start zoneinfo. With
    `required`, a directory that holds nothing recognised is an error."""
    if directory is not None and required:
        procfs.check_snapshot_dir(directory)
    if directory is not None and not directory.is_dir():
        directory = None
    files: dict[str, str] = {}
    parsed: dict[str, object] = {}
    parsers = {"zoneinfo": procfs.parse_zoneinfo, "buddyinfo": procfs.parse_buddyinfo,
               "pagetypeinfo": procfs.parse_pagetypeinfo}
    for when in ("start", "end"):
        for what, parse in parsers.items():
            path = zoneinfo if (zoneinfo and when == "start" and what == "zoneinfo") \
                else procfs.find_snapshot(directory, when, what)
            if path is None:
                continue
            text = procfs.read_text(Path(path))
            parsed[f"{when}_{what}"] = (parse(text, path) if what == "zoneinfo"
                                        else parse(text))
            files[f"{when}_{what}"] = str(path)
    kpf = directory / kpageflags_name if directory is not None else None
    kpf = kpf if kpf is not None and kpf.is_file() else None
    if kpf is not None:
        files["kpageflags"] = str(kpf)
    return Snapshots(directory, kpageflags=kpf, files=files, **parsed)


@dataclass
class World:
    """The initial state every configuration replays from."""

    layout: Layout
    npages: int
    pcls: np.ndarray  # uint8 class per pfn (replay.kernel.pagestate)
    aorder: np.ndarray  # int8: order of an allocation made before the trace, at its head
    pb_mt: np.ndarray  # int8: migratetype per pageblock of HPAGE_PMD_ORDER pages
    source: str  # where the untouched pages' state came from
    estimate: bool  # the untouched pages' state is an estimate
    seen_pages: np.ndarray  # per zone: pages the trace touches
    world_pages: np.ndarray  # per zone: pages of the world at start
    seeded: np.ndarray  # per zone/order: free blocks wanted (start buddyinfo), placed
    start_blocks: np.ndarray  # per zone/order: the world's free blocks at start
    start_type_blocks: np.ndarray  # per zone/engine migratetype/order: the same, by type
    kernel_max_order: int  # the traced kernel's max order (`traced_max_order`)
    online_pages: int = 0  # pages onlined during the trace
    notes: list[str] = field(default_factory=list)


@numba.njit(cache=True)
def first_touch(kind, pfn, order, pcp_mask, npages):
    """Per pfn: build state (W_*), start class, and the order of pre-trace allocations."""
    state = np.zeros(npages, np.int8)
    cls = np.full(npages, pagestate.OUTSIDE, np.uint8)
    aorder = np.full(npages, -1, np.int8)
    for i in range(len(kind)):
        p = pfn[i]
        if p < 0:
            continue
        k = kind[i]
        n = np.int64(1) << order[i]
        if k == TAKE:
            st, c = W_FREE, pagestate.BUDDY
        elif k == DRAIN:
            st, c = W_BUSY, pagestate.PCP
        elif k == ALLOC:
            if (pcp_mask >> order[i]) & 1:
                st, c = W_BUSY, pagestate.PCP
            else:
                st, c = W_FREE, pagestate.BUDDY
        elif k == ONLINE:
            st, c = W_OUT, pagestate.OUTSIDE
        else:  # a free first: allocated before the trace (class decided later)
            st, c = W_BUSY, pagestate.PINNED
            if state[p] == W_UNSEEN:
                aorder[p] = order[i]
        for q in range(p, p + n):
            if state[q] == W_UNSEEN and q < npages:
                state[q] = st
                cls[q] = c
    return state, cls, aorder


@numba.njit(cache=True)
def seed_free_blocks(state, lo, hi, want, max_order, placed_head, placed):
    """Place up to want[o] free blocks per order in [lo, hi), largest orders first.

    A block may cover only world pages that are untouched (W_UNSEEN) or seen free first
    (W_FREE) and not yet placed; blocks holding seen-free pages go first. A block whose
    buddy is placed at the same order would merge, so it is skipped. Returns the blocks
    placed per order.
    """
    got = np.zeros(len(want), np.int64)
    for o in range(max_order, -1, -1):
        n = np.int64(1) << o
        for rnd in range(2):  # 0: blocks holding seen-free pages, 1: untouched blocks
            s = (lo + n - 1) // n * n
            while s + n <= hi and got[o] < want[o]:
                ok = True
                seen_free = 0
                for q in range(s, s + n):
                    if placed[q] or state[q] > W_FREE:
                        ok = False
                        break
                    if state[q] == W_FREE:
                        seen_free += 1
                if ok and (seen_free > 0) == (rnd == 0):
                    b = s ^ n
                    if o < max_order and b >= lo and b + n <= hi and placed_head[b] == o:
                        ok = False
                    if ok:
                        placed[s:s + n] = 1
                        placed_head[s] = o
                        got[o] += 1
                s += n
    return got


def _sections(state: np.ndarray, lo: int, hi: int, managed: int) -> None:
    """Choose the sections holding the zone's managed pages (no kpageflags): whole memory
    sections, those the trace touched first, then upwards, until they hold `managed`
    pages; pages of other sections leave the world (`_trim` takes off the excess)."""
    first = lo // PAGES_PER_SECTION
    last = (hi - 1) // PAGES_PER_SECTION
    secs = list(range(first, last + 1))
    bounds = {s: (max(lo, s * PAGES_PER_SECTION), min(hi, (s + 1) * PAGES_PER_SECTION))
              for s in secs}
    touched = [s for s in secs if (state[bounds[s][0]:bounds[s][1]] != W_UNSEEN).any()]
    rest = [s for s in secs if s not in set(touched)]
    inside = np.zeros(hi - lo, bool)
    count = 0
    for s in touched + rest:
        a, b = bounds[s]
        inside[a - lo:b - lo] = True
        count += int((state[a:b] != W_OUT).sum())
        if count >= managed:
            break
    zone = state[lo:hi]
    zone[(~inside) & (zone == W_UNSEEN)] = W_OUT


def _flagless_sections(flags: np.ndarray, kcls: np.ndarray, state: np.ndarray, lo: int,
                       hi: int, managed: int) -> None:
    """Leave out of the world the zone's untouched memory sections in which kpageflags
    sets no flag on any page, while the zone holds more than its managed pages. The
    zone's pages that are not managed (spanned less present: holes with a memmap;
    present less managed: memory kept from the buddy allocator) show up so on the 6.18
    machine of sample_traces/ (DMA32's 262,144-page hole and Normal's 720,896 unmanaged
    pages, exactly whole sections); a page's own flags cannot tell them from a flagless
    allocated page, a whole section of them can."""
    n = min(len(flags), hi)
    excess = int((kcls[lo:n] != pagestate.OUTSIDE).sum()) - managed
    first = -(-lo // PAGES_PER_SECTION)
    for sec in range(first, n // PAGES_PER_SECTION):
        a, b = sec * PAGES_PER_SECTION, (sec + 1) * PAGES_PER_SECTION
        if excess < PAGES_PER_SECTION:
            return
        if not flags[a:b].any() and (state[a:b] == W_UNSEEN).all():
            state[a:b] = W_OUT
            kcls[a:b] = pagestate.OUTSIDE
            excess -= PAGES_PER_SECTION


def _trim(state: np.ndarray, placed: np.ndarray, lo: int, hi: int, managed: int) -> None:
    """Untouched pages that hold no seeded free block leave the world, from the top, until
    the zone holds `managed` pages (holes and reserved pages are not managed)."""
    zone = state[lo:hi]
    excess = int((zone != W_OUT).sum()) - managed
    if excess > 0:
        idx = np.flatnonzero((zone == W_UNSEEN) & (placed[lo:hi] == 0))
        zone[idx[len(idx) - min(excess, len(idx)):]] = W_OUT


def _type_counts(counts: dict[str, int] | None, pb_total: int) -> np.ndarray:
    """Pageblocks per engine migratetype from pagetypeinfo's counts (all movable without)."""
    out = np.zeros(migratetypes.PCPTYPES, np.int64)
    if not counts:
        out[migratetypes.MOVABLE] = pb_total
        return out
    for name, n in counts.items():
        mt = {"Unmovable": migratetypes.UNMOVABLE, "Movable": migratetypes.MOVABLE,
              "Reclaimable": migratetypes.RECLAIMABLE}.get(name, migratetypes.UNMOVABLE)
        out[mt] += n
    return out


def _lru_shares(zone: ZoneInfo) -> np.ndarray | None:
    """Shares of (anonymous, clean file, dirty file) pages among a zone's LRU pages; None
    when the zoneinfo has no LRU counters (nothing known: the pages stay pinned)."""
    c = zone.counters
    anon = c.get("nr_zone_inactive_anon", 0) + c.get("nr_zone_active_anon", 0)
    file = c.get("nr_zone_inactive_file", 0) + c.get("nr_zone_active_file", 0)
    dirty = min(c.get("nr_zone_write_pending", 0), file)
    total = anon + file
    if total == 0:
        return None
    return np.array([anon, file - dirty, dirty], float) / total


def _estimate_classes(pcls: np.ndarray, state: np.ndarray, pb_mt: np.ndarray, lo: int,
                      hi: int, zone: ZoneInfo, types: dict[str, int] | None,
                      undecided: np.ndarray) -> None:
    """Type the zone's untyped pageblocks in pagetypeinfo's proportions (the fullest ones
    unmovable and reclaimable), and class the allocated pages they hold."""
    pbo = orders.HPAGE_PMD_ORDER
    b0, b1 = lo >> pbo, (hi - 1 >> pbo) + 1
    world_blocks = [b for b in range(b0, b1)
                    if (state[max(lo, b << pbo):min(hi, (b + 1) << pbo)] != W_OUT).any()]
    want = _type_counts(types, len(world_blocks))
    have = np.bincount(pb_mt[world_blocks][pb_mt[world_blocks] >= 0],
                       minlength=migratetypes.PCPTYPES)
    need = np.maximum(want - have[:migratetypes.PCPTYPES], 0)
    untyped = np.array([b for b in world_blocks if pb_mt[b] < 0], np.int64)
    # kernel pageblocks are densely used: the fullest untyped blocks take the unmovable
    # and reclaimable types, the movable ones keep the free pages
    free = np.array([int((pcls[max(lo, b << pbo):min(hi, (b + 1) << pbo)]
                          == pagestate.BUDDY).sum()) for b in untyped], np.int64)
    untyped = untyped[np.argsort(free, kind="stable")]
    fill = ([migratetypes.UNMOVABLE] * int(need[0]) + [migratetypes.RECLAIMABLE] * int(need[2]))
    for b, mt in zip(untyped, fill + [migratetypes.MOVABLE] * len(untyped)):
        pb_mt[b] = mt
    lru = _lru_shares(zone)
    if lru is None:
        return
    shares = np.cumsum(lru)
    _lru_classes(pcls, state, undecided, pb_mt, lo, hi, shares[0], shares[1])


@numba.njit(cache=True)
def _lru_classes(pcls, state, undecided, pb_mt, lo, hi, anon, clean):
    """Class the allocated pages of [lo, hi) with no class yet (PINNED, undecided) in movable
    pageblocks: anonymous, clean or dirty page cache by a deterministic spread (Knuth's
    multiplicative hash of the pfn into [0, 1)) against the cumulative LRU shares `anon`
    and `clean`. A pass over the pages, not per-page temporaries."""
    for q in range(lo, hi):
        if (undecided[q] and pcls[q] == pagestate.PINNED and state[q] != W_OUT
                and pb_mt[q >> orders.HPAGE_PMD_ORDER] == migratetypes.MOVABLE):
            u = ((np.uint64(q) * np.uint64(2654435761)) % np.uint64(1 << 32)) / 2.0 ** 32
            if u < anon:
                pcls[q] = pagestate.MOVABLE
            elif u < clean:
                pcls[q] = pagestate.CLEAN
            else:
                pcls[q] = pagestate.DIRTY


def traced_max_order(snaps: Snapshots) -> int:
    """The traced kernel's max order: /proc/buddyinfo prints one column per order
    0..MAX_PAGE_ORDER (mm/vmstat.c frag_show_print), so a snapshot tells it (a kernel built
    with CONFIG_ARCH_FORCE_MAX_ORDER=5 prints 6); else x86-64's default."""
    for info in (snaps.start_buddyinfo, snaps.end_buddyinfo):
        if info:
            return min(orders.MAX_ORDER_LIMIT, max(len(c) for c in info.values()) - 1)
    return orders.KERNEL_MAX_ORDER


def build_world(stream: Stream, snaps: Snapshots) -> tuple[World, Stream]:
    """The world at trace start, and the stream with onlined memory's frees as ONLINE."""
    top = traced_max_order(snaps)
    release = stream.release
    pcp_mask = orders.pcp_orders_mask(release) if stream.pcp_traced else 0
    notes: list[str] = []
    if snaps.start_zoneinfo:
        layout = zoneinfo_layout(snaps.start_zoneinfo, "zoneinfo "
                                 + snaps.files["start_zoneinfo"], stream.pfn)
    else:
        layout = inferred_layout(stream.pfn)
        notes.append("no start zoneinfo: one zone inferred from the pfns the trace touched")
    zlo, zhi, _ = layout.arrays()
    npages = int(max(layout.end_pfn, stream.max_pfn)) + 1
    kind = stream.kind.copy()
    online = _online(stream, kind, layout, snaps, top)
    state, pcls, aorder = first_touch(kind, stream.pfn, stream.order, pcp_mask, npages)
    # pages allocated before the trace, and the untouched ones: class not known yet
    undecided = (state == W_UNSEEN) | ((state == W_BUSY) & (pcls == pagestate.PINNED))
    pb_mt = np.full((npages >> orders.HPAGE_PMD_ORDER) + 1, -1, np.int8)
    _traced_pageblocks(stream, kind, pb_mt)
    nz = len(layout.zones)
    seen = np.array([int(((state[lo:hi] != W_UNSEEN) & (state[lo:hi] != W_OUT)).sum())
                     for lo, hi in zip(zlo, zhi)], np.int64)
    seeded = np.zeros((nz, 2, NORDERS), np.int64)
    in_zone = np.zeros(npages, bool)
    for lo, hi in zip(zlo, zhi):
        in_zone[lo:hi] = True
    state[~in_zone & (state == W_UNSEEN)] = W_OUT
    if snaps.kpageflags is not None:
        flags = procfs.kpageflags(snaps.kpageflags)
        kcls = pagestate.kpageflags_class(flags[:npages])
        for z, zone in enumerate(layout.zones):
            _flagless_sections(flags, kcls, state, int(zlo[z]), int(zhi[z]), zone.managed)
        unseen = np.flatnonzero(state[:len(kcls)] == W_UNSEEN)
        pcls[unseen] = kcls[unseen]
        known = np.flatnonzero(undecided[:len(kcls)] & (state[:len(kcls)] == W_BUSY)
                               & (kcls < pagestate.ISOLATED) & (kcls > pagestate.PCP))
        pcls[known] = kcls[known]
        undecided[:] = False
        state[len(kcls):][state[len(kcls):] == W_UNSEEN] = W_OUT
        source, estimate = f"kpageflags {snaps.kpageflags}", False
    elif snaps.start_zoneinfo:
        placed = np.zeros(npages, np.uint8)
        head = np.full(npages, -1, np.int8)
        for z, zone in enumerate(layout.zones):
            lo, hi = int(zlo[z]), int(zhi[z])
            _sections(state, lo, hi, zone.managed)
            want = np.zeros(NORDERS, np.int64)
            bi = (snaps.start_buddyinfo or {}).get(zone.key)
            if bi:
                want[:min(len(bi), NORDERS)] = bi[:NORDERS]
            seeded[z, 0] = want
            seeded[z, 1] = seed_free_blocks(state, lo, hi, want, top, head, placed)
            _trim(state, placed, lo, hi, zone.managed)
        free = (placed == 1) | (state == W_FREE)
        pcls[free] = pagestate.BUDDY
        rest = (state == W_UNSEEN) & ~free
        pcls[rest] = pagestate.PINNED
        source = ("estimate from the start buddyinfo, pagetypeinfo and zoneinfo"
                  if snaps.start_buddyinfo else "estimate: start zoneinfo only, every "
                  "untouched page allocated")
        estimate = True
        _seeded_pageblock_types(head, pb_mt, snaps, layout)
    else:
        state[state == W_UNSEEN] = W_OUT
        source, estimate = "none: only the pages the trace touches", True
        notes.append("no snapshot: the world is only the pages the trace touches")
    pcls[state == W_OUT] = pagestate.OUTSIDE
    for z, zone in enumerate(layout.zones):
        lo, hi = int(zlo[z]), int(zhi[z])
        types = None
        if snaps.start_pagetypeinfo:
            types = snaps.start_pagetypeinfo.blocks.get(zone.key)
        _estimate_classes(pcls, state, pb_mt, lo, hi, zone, types, undecided)
    pb_mt[pb_mt < 0] = migratetypes.MOVABLE
    world_pages = np.array([int((pcls[lo:hi] != pagestate.OUTSIDE).sum())
                            for lo, hi in zip(zlo, zhi)], np.int64)
    start_blocks = np.zeros((nz, NORDERS), np.int64)
    start_types = np.zeros((nz, migratetypes.PCPTYPES, NORDERS), np.int64)
    for z in range(nz):
        free_blocks(pcls, zlo[z], zhi[z], top, start_blocks[z])
    page_mt = np.repeat(pb_mt, 1 << orders.HPAGE_PMD_ORDER)[:npages]
    for mt in range(migratetypes.PCPTYPES):
        of_type = np.where(page_mt == mt, pcls, pagestate.PINNED)  # other types: not free
        for z in range(nz):
            free_blocks(of_type, zlo[z], zhi[z], top, start_types[z, mt])
    if online:
        notes.append(f"{online:,} pages were onlined during the trace (memory hot-add): "
                     "they join the world at their first free")
    world = World(layout, npages, pcls, aorder, pb_mt, source, estimate, seen, world_pages,
                  seeded, start_blocks, start_types, top, online, notes)
    return world, _with_kind(stream, kind)


def _with_kind(stream: Stream, kind: np.ndarray) -> Stream:
    from dataclasses import replace

    return replace(stream, kind=kind)


def _online(stream: Stream, kind: np.ndarray, layout: Layout, snaps: Snapshots,
            top: int) -> int:
    """Mark the frees of memory onlined during the trace as ONLINE; return its pages.

    The end zoneinfo's `managed` above the start's is onlined memory; the kernel frees it
    in max-order blocks that the trace has never seen before (first event a free)."""
    if not (snaps.start_zoneinfo and snaps.end_zoneinfo):
        return 0
    grown = sum(max(0, e.managed - s.managed) for s in snaps.start_zoneinfo
                for e in snaps.end_zoneinfo if e.key == s.key)
    if grown <= 0:
        return 0
    frees = np.flatnonzero(((kind == FREE_BUDDY) | (kind == FREE_PCP))
                           & (stream.order == top))
    if not len(frees):
        return 0
    # first event of the head page: a free seen before any other event of that pfn
    first = first_index(np.maximum(stream.pfn, 0), stream.pfn >= 0, int(stream.max_pfn) + 1)
    taken = 0
    for i in frees:
        if taken >= grown:
            break
        if first[stream.pfn[i]] == i:
            kind[i] = ONLINE
            taken += 1 << top
    return taken


def _traced_pageblocks(stream: Stream, kind: np.ndarray, pb_mt: np.ndarray) -> None:
    """A pageblock's type at trace start, from the first event that reveals it: an
    `mm_page_alloc_extfrag` names the type the block had before the fallback (every
    pageblock of a block of pageblock order or more); a TAKE
    (mm_page_alloc_zone_locked) the free list it took from (the pageblock's type since
    6.10's freelist hygiene) — except a claim's own TAKE, which carries the new type
    (replay/kernel/tracepoints.py); with neither, the block's first allocation."""
    pbo = orders.HPAGE_PMD_ORDER
    nb = len(pb_mt)
    blocks = np.maximum(stream.pfn, 0) >> pbo
    first = first_index(blocks, (kind == ALLOC) & (stream.pfn >= 0), nb)
    seen = np.flatnonzero(first >= 0)
    pb_mt[seen] = stream.migratetype[first[seen]]
    take = kind == TAKE
    take[np.flatnonzero(take)[_claim_takes(stream, np.flatnonzero(take))]] = False
    first_take = first_index(blocks, take, nb)
    fb_blocks, fb_row, fb_mt = _fallback_pageblocks(stream.fallbacks, pbo, nb)
    first_fb = first_index(fb_blocks, np.ones(len(fb_blocks), np.bool_), nb)
    never = np.iinfo(np.int64).max
    row_take = np.where(first_take >= 0,
                        stream.row[np.maximum(first_take, 0)].astype(np.int64), never)
    row_fb = np.full(nb, never, np.int64)
    by_fb = np.flatnonzero(first_fb >= 0)
    row_fb[by_fb] = fb_row[first_fb[by_fb]]
    by_take = np.flatnonzero((first_take >= 0) & (row_take < row_fb))
    by_fb = by_fb[row_fb[by_fb] < row_take[by_fb]]
    pb_mt[by_take] = stream.migratetype[first_take[by_take]]
    pb_mt[by_fb] = fb_mt[first_fb[by_fb]]


def _fallback_pageblocks(fb: TracedFallbacks, pbo: int, nb: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pageblock, row, type before the fallback) for every pageblock of every traced
    fallback block whose type is known: one entry per pageblock a block of pageblock
    order or more spans, in row order; pageblocks past `nb` left out."""
    known = np.flatnonzero(fb.fallback_mt >= 0)
    span = np.maximum(fb.fallback_order[known] - pbo, 0)
    reps = np.int64(1) << span
    each = np.repeat(known, reps)
    offset = np.arange(len(each)) - np.repeat(np.cumsum(reps) - reps, reps)
    span = span.repeat(reps)
    blocks = (fb.pfn[each] >> pbo >> span << span) + offset
    inside = blocks < nb
    return blocks[inside], fb.row[each[inside]], fb.fallback_mt[each[inside]]


@numba.njit(cache=True)
def first_index(keys, use, nkeys):
    """Per key in [0, nkeys): the index of its first entry with `use` set, or -1 (a linear
    pass where np.unique would sort)."""
    out = np.full(nkeys, -1, np.int64)
    for i in range(len(keys)):
        if use[i] and out[keys[i]] < 0:
            out[keys[i]] = i
    return out


def _claim_takes(stream: Stream, take: np.ndarray) -> np.ndarray:
    """Per TAKE in `take`: the zone_locked event of a claimed fallback (6.10+: the last TAKE
    of the extfrag's page within CLAIM_TRACE_GAP rows before it)."""
    out = np.zeros(len(take), bool)
    fb = stream.fallbacks
    if not len(fb.row) or not tracepoints.claim_take_before_extfrag(stream.release):
        return out
    cand = np.flatnonzero(np.isin(stream.pfn[take], fb.pfn))
    order = cand[np.lexsort((stream.row[take[cand]], stream.pfn[take[cand]]))]
    pfns, rows = stream.pfn[take[order]], stream.row[take[order]]
    for p, r in zip(fb.pfn, fb.row):
        lo, hi = np.searchsorted(pfns, p, "left"), np.searchsorted(pfns, p, "right")
        j = lo + np.searchsorted(rows[lo:hi], r) - 1
        if j >= lo and r - rows[j] <= tracepoints.CLAIM_TRACE_GAP:
            out[order[j]] = True
    return out


def _seeded_pageblock_types(head: np.ndarray, pb_mt: np.ndarray, snaps: Snapshots,
                            layout: Layout) -> None:
    """Seeded free blocks take migratetypes in the start pagetypeinfo's proportions per
    zone and order; a free block of a whole pageblock or more types its pageblocks."""
    if not snaps.start_pagetypeinfo:
        return
    pbo = orders.HPAGE_PMD_ORDER
    heads = np.flatnonzero(head >= 0)
    zidx = layout.zone_of(heads)
    for z, zone in enumerate(layout.zones):
        per_type = snaps.start_pagetypeinfo.free.get(zone.key, {})
        for o in range(NORDERS):
            mine = heads[(zidx == z) & (head[heads] == o)]
            seq: list[int] = []
            for name, mt in (("Unmovable", migratetypes.UNMOVABLE),
                             ("Reclaimable", migratetypes.RECLAIMABLE),
                             ("Movable", migratetypes.MOVABLE)):
                counts = per_type.get(name, [])
                seq += [mt] * (counts[o] if o < len(counts) else 0)
            seq += [migratetypes.MOVABLE] * max(0, len(mine) - len(seq))
            for p, mt in zip(mine, seq):
                first = p >> pbo
                last = (p + (1 << o) - 1) >> pbo
                for b in range(first, last + 1):
                    if pb_mt[b] < 0 or o >= pbo:
                        pb_mt[b] = mt
