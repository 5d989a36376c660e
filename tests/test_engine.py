"""The replay engine on hand-built scenarios with known answers and on random streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay.engine.buddy import COUNTERS, C_MEMAREA, C_TRACED_FAILED, add_to_free, del_from_free
from replay.engine.measures import fragmentation_index, free_blocks, unusable_free_index
from replay.engine.observed import INCONSISTENCIES, OUTCOMES
from replay.engine.simulated import new_state
from replay.engine.stream import ALLOC, RAW_BATCHED, RAW_FREE, _resolve
from replay.engine.sweep import run_configs
from replay.engine.validate import ValidationError, validate_buddy
from replay.kernel.pagestate import BUDDY, MOVABLE, OUTSIDE, PINNED
from tests.engine_streams import ANON, KERNEL, READAHEAD, SLAB, WRITE, context, make_stream, \
    random_ops, snapshots, zone

FAILED = OUTCOMES.index("failed")


def _run(ops, zones, configs, release="6.18", **opts):
    from replay.engine.context import build_context
    from replay.engine.options import SimOptions

    ctx = build_context(make_stream(ops, release), snapshots(*zones), SimOptions(**opts))
    base = ("simulated", 10, "none", "none")
    return ctx, run_configs(ctx, [base] + configs, quiet=True)[1:]


# --- hand-built scenarios ---------------------------------------------------------------

# Zone [0, 16), max order 2, an order-3 request: [8, 16) holds an unmovable page (never
# usable) and a reclaimable-slab page (unmovable for isolation); [0, 8) holds a movable
# page (3) and nothing else.
ONLY_MIGRATE = [
    ("alloc", 0, 3, ANON), ("free", 0, 3), ("alloc", 8, 3, ANON), ("free", 8, 3),
    ("alloc", 3, 0, ANON), ("alloc", 9, 0, KERNEL), ("alloc", 12, 0, SLAB),
    ("alloc", -1, 3, ANON),
]


@pytest.mark.parametrize("search", ["linear", "coalesced", "bitmap"])
def test_fragmented_zone_only_migrate_succeeds(search):
    configs = [("observed", 2, search, p) for p in ("free", "reclaim", "migrate")]
    _, res = _run(ONLY_MIGRATE, [zone(0, 16)], configs)
    last = [(OUTCOMES[r.out[-1]], int(r.migrated[-1]), bool(r.false[-1])) for r in res]
    assert last == [("failed", 0, True), ("failed", 0, True), ("memarea_migrate", 1, False)]
    assert all(OUTCOMES[o] == "memarea_free" for r in res for o in r.out[:2])


def test_migrate_needs_free_pages_elsewhere():
    ops = ONLY_MIGRATE[:4] + [("alloc", 3, 0, ANON), ("alloc", 8, 3, KERNEL)]
    ops += [("alloc", p, 0, KERNEL) for p in (0, 1, 2, 4, 5, 6, 7)] + [("alloc", -1, 3, ANON)]
    _, (r,) = _run(ops, [zone(0, 16)], [("observed", 2, "linear", "migrate")])
    assert OUTCOMES[r.out[-1]] == "failed" and not r.false[-1]


# Zone [0, 32), page 0 unmovable, the rest free; an order-2 request with max order 1.
ALIGN_OPS = [("alloc", 0, 5, ANON), ("free", 0, 5), ("alloc", 0, 0, KERNEL),
             ("alloc", -1, 2, ANON)]


@pytest.mark.parametrize("search, align, offset, cost, found", [
    ("linear", 0, 0, 5, True),      # candidate 0 stops at page 0; [4, 8) costs 4 pages
    ("bitmap", 0, 0, 2, True),      # one word each for candidates 0 and 4
    ("coalesced", 0, 0, 2, True),   # order-1 blocks 4 and 6 are free (block 0 is not)
    ("linear", 4, 1, 4, True),      # [1, 5) is free
    ("coalesced", 4, 1, 0, False),  # no start with s % 4 == 1 is order-1 aligned
])
def test_alignment_and_offset(search, align, offset, cost, found):
    _, (r,) = _run(ALIGN_OPS, [zone(0, 32)], [("observed", 1, search, "free")],
                   align=align, offset=offset)
    assert int(r.cost[-1]) == cost
    assert (OUTCOMES[r.out[-1]] == "memarea_free") == found
    assert bool(r.false[-1]) == (not found)  # a free run existed


def test_batched_free_ends_only_what_mm_page_free_did_not():
    kind = np.array([ALLOC, RAW_FREE, RAW_BATCHED, ALLOC, RAW_BATCHED], np.int8)
    pfn = np.array([10, 10, 10, 11, 11], np.int64)
    order = np.zeros(5, np.int64)
    assert _resolve(kind, pfn, order, 16, 0) == 1
    from replay.engine.stream import FREE_BUDDY

    assert list(kind) == [ALLOC, FREE_BUDDY, -1, ALLOC, FREE_BUDDY]


def test_a_pcp_free_goes_to_the_buddy_lists_when_the_page_is_next_handed_out_again():
    """free_one_page() bypassing the per-CPU list shows as a TAKE with no drain."""
    ops = [("take", 4, 0, 1), ("alloc", 4, 0, ANON), ("free", 4, 0), ("take", 4, 0, 1),
           ("alloc", 4, 0, ANON), ("free", 4, 0), ("drain", 4, 0)]
    s = make_stream(ops)
    from replay.engine.stream import FREE_BUDDY, FREE_PCP

    assert [int(k) for k in s.kind if k in (FREE_BUDDY, FREE_PCP)] == [FREE_BUDDY, FREE_PCP]


def test_initial_state_and_inconsistencies():
    ops = [("free", 4, 1), ("alloc", 4, 1, KERNEL), ("alloc", 4, 0, KERNEL),
           ("free", 8, 0), ("free", 8, 0), ("alloc", 12, 2, ANON), ("free", 12, 1)]
    ctx, (r,) = _run(ops, [zone(0, 16)], [("observed", 1, "linear", "free")])
    w = ctx.world
    # 4-5 and 8 allocated before the trace, 12-15 free, the untouched pages allocated
    assert list(np.flatnonzero(w.pcls == BUDDY)) == [12, 13, 14, 15]
    assert w.aorder[4] == 1 and w.aorder[8] == 0
    assert int(w.seen_pages[0]) == 7 and int(w.world_pages[0]) == 16
    assert dict(zip(INCONSISTENCIES, r.inconsistencies)) == {
        "double_alloc": 1, "free_of_free": 1, "order_mismatch": 1, "pcp_mismatch": 0}


def test_world_is_managed_memory_seeded_from_buddyinfo():
    """Untouched memory is seeded with start buddyinfo's free blocks, the rest allocated;
    only `managed` pages of the zone belong to the world."""
    ops = [("alloc", 0, 0, KERNEL)]
    z = zone(0, 64, managed=48)
    ctx = context(ops, snapshots(z, buddyinfo={"0/Normal": [1, 1, 0, 0, 1]}))
    w = ctx.world
    assert int(w.world_pages[0]) == 48
    assert list(w.start_blocks[0][:5]) == [1, 1, 0, 0, 1]  # seeded exactly
    assert w.seeded[0, 1].tolist()[:5] == [1, 1, 0, 0, 1]
    assert w.estimate and "estimate" in w.source
    assert int((w.pcls == PINNED).sum() + (w.pcls == MOVABLE).sum()) >= 48 - 19 - 1


def test_traced_failure_is_never_served():
    """The kernel failed an order-4 request although the zone was free: the baseline fails
    it too and keeps the pages free; below its order memarea is asked (judged), but the
    run is not taken."""
    ops = [("alloc", 0, 5, ANON), ("free", 0, 5), ("alloc", -1, 4, ANON)]
    ctx, (low,) = _run(ops, [zone(0, 32)], [("simulated", 3, "linear", "free")])
    (base,) = run_configs(ctx, [("simulated", 10, "none", "none")], quiet=True)
    assert OUTCOMES[base.out[-1]] == "failed"
    assert base.counters[C_TRACED_FAILED] == 1
    assert int(base.end_blocks[0].sum()) == 1 and int(base.end_blocks[0][5]) == 1
    assert OUTCOMES[low.out[-1]] == "memarea_free"  # memarea's verdict below its order
    assert int((low.end_blocks[0] << np.arange(low.end_blocks.shape[1])).sum()) == 32


def test_watermark_keeps_a_lower_zone_from_draining():
    """A Normal request may fall back to DMA32 only while DMA32 stays above its low
    watermark plus lowmem_reserve; past both it is still served but counted."""
    dma32 = zone(0, 16, "DMA32", wmark_min=4, wmark_low=6, protection=(0, 0, 4))
    normal = zone(16, 16)
    # DMA32 free at the start; Normal allocated before the trace (its first event a free)
    ops = [("alloc", 0, 4, ANON), ("free", 0, 4), ("free", 16, 4)]
    ctx, _ = _run(ops, [dma32, normal], [])
    from replay.engine.buddy import C_BELOW_WMARK, buddy_alloc

    state = new_state(ctx.world, 2, 10, ctx.zlo, ctx.zhi)
    st = state.arrays()
    # Normal is full: order-0 Normal requests fall back to DMA32 while free - 0 > low (6)
    # + reserve (4) (16..11 free pages), then > min (4) + 4 (10, 9), then below both
    got = [buddy_alloc(st, ctx.zlo, ctx.zhi, ctx.ztype, ctx.wmin, ctx.wlow, ctx.prot, -1,
                       2, 0, 0, 10, state.pb_order, ctx.era, False)[1] for _ in range(16)]
    assert got == [0] * 16
    assert state.ctr[C_BELOW_WMARK] == 16 - 8  # pages 0..7 taken above min + reserve


def test_kernel_fragmentation_formulas():
    nr = np.array([4, 0, 1], np.int64)  # 8 free pages in 5 blocks
    assert unusable_free_index(nr, 0) == 0
    assert unusable_free_index(nr, 2) == 500
    assert unusable_free_index(nr, 3) == 1000
    assert fragmentation_index(nr, 2) == -1000
    assert fragmentation_index(nr, 3) == 1000 - (1000 + 8 * 1000 // 8) // 5
    assert unusable_free_index(np.zeros(3, np.int64), 1) == 1000
    assert fragmentation_index(np.zeros(3, np.int64), 1) == 0


def test_free_blocks_coalesce_on_absolute_alignment():
    pcls = np.ones(32, np.uint8) * PINNED
    pcls[3:17] = BUDDY  # 3, 4-7, 8-15, 16
    nr = np.zeros(4, np.int64)
    assert free_blocks(pcls, 0, 32, 3, nr) == 14
    assert list(nr) == [2, 0, 1, 1]


def test_validator_catches_an_unmerged_buddy():
    ctx = context(ALIGN_OPS, snapshots(zone(0, 32)))
    state = new_state(ctx.world, 1, 3, ctx.zlo, ctx.zhi)
    validate_buddy(state, ctx.zlo, ctx.zhi)
    h = int(state.heads[0, 3, 1])  # split a free order-3 block into two order-2 buddies
    del_from_free(state.arrays(), 0, h)
    add_to_free(state.arrays(), 0, h, 2, 1)
    add_to_free(state.arrays(), 0, h + 4, 2, 1)
    with pytest.raises(ValidationError, match="not merged"):
        validate_buddy(state, ctx.zlo, ctx.zhi)


# --- property tests ----------------------------------------------------------------------

_SETTINGS = settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(seed=st.integers(0, 10**6), n=st.integers(1, 3),
       policy=st.sampled_from(["free", "reclaim", "migrate"]),
       release=st.sampled_from(["5.10", "6.12", "6.18"]))
def test_invariants_hold_after_every_step_with_the_pcp_layer(seed, n, policy, release):
    ops = random_ops(seed, 64, 60, 4)
    # one series sample per event: the validator runs after every step
    _, (r,) = _run(ops, [zone(0, 64)], [("simulated", n, "linear", policy)],
                   release=release if release != "6.18" else "5.12", check=True,
                   series_samples=len(ops))
    assert r.counters is not None


@_SETTINGS
@given(seed=st.integers(0, 10**6), n=st.integers(1, 3),
       policy=st.sampled_from(["free", "reclaim", "migrate"]),
       mode=st.sampled_from(["observed", "simulated"]))
def test_searches_agree_on_success_and_differ_in_cost(seed, n, policy, mode):
    ops = random_ops(seed, 64, 60, 4)
    configs = [(mode, n, s, policy) for s in ("linear", "coalesced", "bitmap")]
    _, res = _run(ops, [zone(0, 64)], configs, release="5.12")
    lin, coa, bit = res
    for other in (coa, bit):
        assert (other.out == lin.out).all()
        assert (other.reclaimed == lin.reclaimed).all()
        assert (other.migrated == lin.migrated).all()
    assert (bit.cost <= lin.cost).all()  # a bitmap word covers up to 64 pages


@_SETTINGS
@given(seed=st.integers(0, 10**6))
def test_max_order_above_every_request_never_calls_memarea(seed):
    ops = random_ops(seed, 64, 60, 4)
    _, (r,) = _run(ops, [zone(0, 64)], [("simulated", 4, "linear", "migrate")],
                   release="5.12")
    assert r.counters[C_MEMAREA] == 0
    assert len(r.out) == 0


# --- the kernel's mechanisms: per-CPU lists, folios, dirty page cache ---------------------

def _sim(ops, configs, pages=64, release="6.18"):
    return _run(ops, [zone(0, pages)], configs, release=release)


def test_pcp_refill_and_drain_do_the_buddy_work_where_the_kernel_does():
    """An order-0 page reaches a caller through a refill (TAKE: the buddy splits), goes back
    to the per-CPU list on free (no buddy work), and merges back only when drained."""
    ops = [("alloc", 0, 3, ANON), ("free", 0, 3),  # [0, 8) free at the start
           ("take", 0, 0, 1), ("alloc", 0, 0, KERNEL), ("free", 0, 0), ("drain", 0, 0)]
    ctx, _ = _sim(ops, [], pages=8)
    (base,) = run_configs(ctx, [("simulated", 10, "none", "none")], quiet=True)
    c = dict(zip(COUNTERS, base.counters.tolist()))
    assert (c["pcp_refills"], c["pcp_drains"], c["direct_allocs"]) == (1, 1, 0)
    assert c["split_steps"] == 3 and c["merge_steps"] == 3  # 8 -> 1 and back
    assert base.end_blocks[0][3] == 1 and base.end_pcp.tolist() == [0]
    # without the drain the page stays on the per-CPU list: not free in the buddy lists
    ctx, _ = _sim(ops[:-1] + [("take", 1, 0, 1), ("drain", 1, 0)], [], pages=8)
    (base,) = run_configs(ctx, [("simulated", 10, "none", "none")], quiet=True)
    assert base.end_pcp.tolist() == [1] and int(base.end_blocks[0].sum()) == 3


# Zone [0, 16): [4, 8) is free at the start and the folio (an anonymous compound page of
# order 2) lands there; [0, 4) was allocated before the trace and is freed; [8, 16) is
# never touched (allocated, nothing known of it: pinned). [0, 8) is the only order-3 run;
# the order-3 request succeeded in the kernel (a traced failure would only be judged).
FOLIO_OPS = [("alloc", 4, 2, KERNEL), ("free", 4, 2), ("alloc", 4, 2, ANON), ("free", 0, 2)]


def test_a_folio_migrates_whole_to_a_block_of_its_order():
    """[12, 16) is freed: a block of the folio's order outside the run takes it whole."""
    ops = FOLIO_OPS + [("free", 12, 2), ("alloc", 0, 3, ANON)]
    _, (r,) = _run(ops, [zone(0, 16)], [("simulated", 2, "linear", "migrate")])
    c = dict(zip(COUNTERS, r.counters.tolist()))
    assert OUTCOMES[r.out[-1]] == "memarea_migrate" and int(r.migrated[-1]) == 4
    assert c["folios_migrated"] == 1


def test_a_folio_without_a_free_block_of_its_order_is_split_first():
    """Only order-0 holes outside the run: the folio cannot move whole, so it is split and
    its pages migrate one by one, as migrate_pages() does on -ENOMEM."""
    ops = FOLIO_OPS + [("free", p, 0) for p in (8, 10, 12, 14)] + [("alloc", 0, 3, ANON)]
    _, (r,) = _run(ops, [zone(0, 16)], [("simulated", 2, "linear", "migrate")])
    c = dict(zip(COUNTERS, r.counters.tolist()))
    assert OUTCOMES[r.out[-1]] == "memarea_migrate" and int(r.migrated[-1]) == 4
    assert c["folios_migrated"] == 0


def test_a_dirty_page_cache_run_is_reclaimed_after_a_writeback():
    """Page cache written through write_begin (__GFP_WRITE) is dirty: reclaim writes it
    back before dropping it; readahead's clean pages are dropped at once."""
    ops = [("alloc", 0, 3, ANON), ("free", 0, 3)]  # [8, 16) never touched: pinned
    ops += [("alloc", p, 0, WRITE) for p in (0, 1)] + [("alloc", 2, 0, READAHEAD)]
    ops += [("alloc", 0, 3, ANON)]  # served (at 0) in the kernel; memarea's turn here
    _, (free, reclaim) = _run(ops, [zone(0, 16)], [("simulated", 2, "linear", "free"),
                                                  ("simulated", 2, "linear", "reclaim")])
    assert OUTCOMES[free.out[-1]] == "failed"
    assert OUTCOMES[reclaim.out[-1]] == "memarea_reclaim" and int(reclaim.reclaimed[-1]) == 3
    c = dict(zip(COUNTERS, reclaim.counters.tolist()))
    assert c["pages_written_back"] == 2


def test_memory_onlined_during_the_trace_joins_the_world_at_its_free():
    """The end zoneinfo manages 1024 pages more than the start: the max-order free of a
    never-seen block is memory being onlined (__free_pages_core), not a pre-trace page."""
    from dataclasses import replace

    from replay.engine.context import build_context
    from replay.engine.options import SimOptions

    start = zone(0, 2048, managed=1024)
    snaps = replace(snapshots(start), end_zoneinfo=[zone(0, 2048, managed=2048)])
    ops = [("alloc", 0, 0, KERNEL), ("free", 0, 0), ("free", 1024, 10)]
    ctx = build_context(make_stream(ops), snaps, SimOptions())
    w = ctx.world
    assert w.online_pages == 1024 and int(w.world_pages[0]) == 1024
    assert (w.pcls[1024:2048] == OUTSIDE).all()  # not in the world until onlined
    (base,) = run_configs(ctx, [("simulated", 10, "none", "none")], quiet=True)
    assert int(base.end_blocks[0][10]) >= 1  # the onlined block is free at the end
    assert dict(zip(COUNTERS, base.counters.tolist()))["online_pages"] == 1024


@pytest.mark.parametrize("release, claimed_block_type", [("6.18", 1), ("6.9", 0)])
def test_pageblock_types_at_start_come_from_the_first_revealing_event(release,
                                                                      claimed_block_type):
    """Zone [0, 2048), pageblocks of 512. Pageblock 1: an unmovable TAKE at 512, then an
    extfrag claim of its order-9 Movable block. Since 6.10 the claim's TAKE comes first
    and carries the new type: the block was Movable (1) at the start. In 6.9 the extfrag
    comes before its TAKE, so an earlier TAKE is a take of its own: Unmovable (0).
    Pageblocks 2 and 3: an extfrag of an order-10 Reclaimable block types both."""
    from replay.engine.context import build_context
    from replay.engine.options import SimOptions
    from replay.engine.stream import TAKE, TracedFallbacks, build_stream
    from replay.kernel.release import parse_release

    a = lambda *x: np.array(x, np.int64)  # noqa: E731
    fallbacks = TracedFallbacks(row=a(1, 3), pfn=a(512, 1024), fallback_order=a(9, 10),
                                fallback_mt=a(1, 2))
    stream = build_stream(np.array([TAKE, TAKE, TAKE], np.int8), a(512, 0, 1024), a(0, 0, 0),
                          a(0, 2, 0), a(2, 2, 2), np.zeros(3, np.uint8), np.zeros(3, bool),
                          a(0, 1, 2), a(0, 2, 4), parse_release(release),
                          fallbacks=fallbacks, drains_enabled=True)
    ctx = build_context(stream, snapshots(zone(0, 2048)), SimOptions())
    assert ctx.world.pb_mt[:4].tolist() == [2, claimed_block_type, 2, 2]
