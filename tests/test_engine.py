"""The replay engine on hand-built scenarios with known answers and on random streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay.engine.measures import fragmentation_index, free_blocks, unusable_free_index
from replay.engine.observed import OUTCOMES
from replay.engine.simulate import SimOptions, build_context, run_in_process
from replay.engine.stream import _resolve_batched, BATCHED_FREE, FREE, ALLOC
from replay.engine.validate import ValidationError, validate_buddy
from replay.engine.simulated import new_state
from tests.engine_streams import ANON, KERNEL, SLAB, make_stream, random_ops, zone_layout

FAILED = OUTCOMES.index("failed")


def _run(ops, layout, configs, **opts):
    stream = make_stream(ops)
    ctx = build_context(stream, layout, SimOptions(**opts))
    return ctx, run_in_process(ctx, configs)


# --- hand-built scenarios ---------------------------------------------------------------

# Zone [0, 16), max order 2, an order-3 request: [8, 16) holds an unmovable page (never
# usable); [0, 8) holds a movable page (3) and nothing else, with free pages elsewhere.
ONLY_MIGRATE = [
    ("alloc", 0, 3, ANON), ("free", 0, 3), ("alloc", 8, 3, ANON), ("free", 8, 3),
    ("alloc", 3, 0, ANON), ("alloc", 9, 0, KERNEL), ("alloc", 12, 0, SLAB),
    ("alloc", -1, 3, ANON),
]


@pytest.mark.parametrize("search", ["linear", "coalesced", "bitmap"])
def test_fragmented_zone_only_migrate_succeeds(search):
    configs = [("observed", 2, search, p) for p in ("free", "reclaim", "migrate")]
    _, res = _run(ONLY_MIGRATE, zone_layout(0, 16), configs)
    last = [(OUTCOMES[r["out"][-1]], int(r["migrated"][-1]), bool(r["false"][-1]))
            for r in res]
    assert last == [("failed", 0, True), ("failed", 0, True), ("memarea_migrate", 1, False)]
    # the two earlier order-3 requests found an empty zone
    assert all(OUTCOMES[o] == "memarea_free" for r in res for o in r["out"][:2])


def test_migrate_needs_free_pages_elsewhere():
    # same zone, but [8, 16) full of unmovable pages: no free page can take page 3
    ops = ONLY_MIGRATE[:4] + [("alloc", 3, 0, ANON), ("alloc", 8, 3, KERNEL)]
    ops += [("alloc", p, 0, KERNEL) for p in (0, 1, 2, 4, 5, 6, 7)] + [("alloc", -1, 3, ANON)]
    _, (r,) = _run(ops, zone_layout(0, 16), [("observed", 2, "linear", "migrate")])
    assert OUTCOMES[r["out"][-1]] == "failed" and not r["false"][-1]


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
    _, (r,) = _run(ALIGN_OPS, zone_layout(0, 32), [("observed", 1, search, "free")],
                   align=align, offset=offset)
    assert int(r["cost"][-1]) == cost
    assert (OUTCOMES[r["out"][-1]] == "memarea_free") == found
    assert bool(r["false"][-1]) == (not found)  # a free run existed


def test_batched_free_ends_only_what_mm_page_free_did_not():
    kind = np.array([ALLOC, FREE, BATCHED_FREE, ALLOC, BATCHED_FREE], np.int8)
    pfn = np.array([10, 10, 10, 11, 11], np.int64)
    order = np.zeros(5, np.int64)
    assert _resolve_batched(kind, pfn, order, 16) == 1
    assert list(kind) == [ALLOC, FREE, BATCHED_FREE, ALLOC, FREE]


def test_initial_state_and_inconsistencies():
    ops = [("free", 4, 1), ("alloc", 4, 1, KERNEL), ("alloc", 4, 0, KERNEL),
           ("free", 8, 0), ("free", 8, 0), ("alloc", 12, 2, ANON), ("free", 12, 1)]
    ctx, (r,) = _run(ops, zone_layout(0, 16), [("observed", 1, "linear", "free")])
    # 4-5 and 8 allocated before the trace, 12-15 free, 0-3, 6-7, 9-11 never seen
    assert list(ctx.start_counts) == [4, 3, 9]
    assert list(r["inconsistencies"]) == [1, 1, 1]  # double alloc, free of free, order


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
    pcls = np.ones(32, np.uint8)
    pcls[3:17] = 0  # 3, 4-7, 8-15, 16
    nr = np.zeros(4, np.int64)
    assert free_blocks(pcls, 0, 32, 3, nr) == 14
    assert list(nr) == [2, 0, 1, 1]


def test_validator_catches_an_unmerged_buddy():
    stream = make_stream(ALIGN_OPS)
    ctx = build_context(stream, zone_layout(0, 32), SimOptions())
    state = new_state(ctx.npages, 1, 3, stream, ctx.pcls0, ctx.aorder0, ctx.zlo, ctx.zhi)
    validate_buddy(state, ctx.zlo, ctx.zhi)
    from replay.engine.buddy import add_to_free, del_from_free

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
       policy=st.sampled_from(["free", "reclaim", "migrate"]))
def test_invariants_hold_after_every_step(seed, n, policy):
    ops = random_ops(seed, 64, 60, 4)
    # one series sample per event: the validator runs after every step
    _, (r,) = _run(ops, zone_layout(0, 64), [("simulated", n, "linear", policy)],
                   check=True, series_samples=len(ops))
    assert r["counters"] is not None


@_SETTINGS
@given(seed=st.integers(0, 10**6), n=st.integers(1, 3),
       policy=st.sampled_from(["free", "reclaim", "migrate"]),
       mode=st.sampled_from(["observed", "simulated"]))
def test_searches_agree_on_success_and_differ_in_cost(seed, n, policy, mode):
    ops = random_ops(seed, 64, 60, 4)
    configs = [(mode, n, s, policy) for s in ("linear", "coalesced", "bitmap")]
    _, res = _run(ops, zone_layout(0, 64), configs)
    lin, coa, bit = res
    for other in (coa, bit):
        assert (other["out"] == lin["out"]).all()
        assert (other["reclaimed"] == lin["reclaimed"]).all()
        assert (other["migrated"] == lin["migrated"]).all()
    # a bitmap word covers up to 64 pages: never more words than pages
    assert (bit["cost"] <= lin["cost"]).all()


@_SETTINGS
@given(seed=st.integers(0, 10**6))
def test_max_order_above_every_request_never_calls_memarea(seed):
    ops = random_ops(seed, 64, 60, 4)
    _, (r,) = _run(ops, zone_layout(0, 64), [("simulated", 4, "linear", "migrate")])
    assert r["counters"][8] == 0  # memarea_calls
    assert len(r["out"]) == 0
