"""Running configurations: grouped where they cannot differ, in a pool of forked workers.

Configurations that differ only in a search sharing one candidate grid run as one replay
(they find the same runs: memarea.py), only their costs differ; `coalesced` shares unless
the alignment cuts max-order blocks. The workers are forked, so they share the context's
arrays without copying them.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from replay.engine import memarea
from replay.engine.context import Context
from replay.engine.observed import OUT_FAILED, SERIES_ORDERS, replay_observed
from replay.engine.simulated import new_state, replay_simulated, sample
from replay.engine.stream import ALLOC
from replay.engine.validate import validate_buddy
from replay.kernel.orders import COSTLY_ORDER
from replay.kernel.pagestate import PCP, POLICIES
from replay.progress import progress_bar

Config = tuple[str, int, str, str]  # mode, max order, search, policy


@dataclass(frozen=True)
class Group:
    """Configurations replayed together (they differ only in search cost)."""

    mode: str
    max_order: int
    policy: str
    searches: tuple[str, ...]
    series: bool  # record the fragmentation series


@dataclass
class RunResult:
    """One configuration's replay: its requests' outcomes and the run's figures."""

    config: Config
    sel: np.ndarray  # stream index of each request slot
    out: np.ndarray
    cost: np.ndarray
    reclaimed: np.ndarray
    migrated: np.ndarray
    false: np.ndarray
    ser_at: np.ndarray
    ser_nr: np.ndarray
    ser_long: np.ndarray
    elapsed: float
    counters: np.ndarray | None = None  # simulated: buddy counters
    inconsistencies: np.ndarray | None = None  # observed
    end_blocks: np.ndarray | None = None  # simulated: zone x order
    end_pcp: np.ndarray | None = None  # simulated: per-CPU pages per zone at the end


_CTX: Context | None = None


def req_slots(ctx: Context, min_order: int) -> tuple[np.ndarray, np.ndarray]:
    """(slot per stream entry or -1, stream index per slot) for allocations >= min_order."""
    s = ctx.stream
    sel = np.flatnonzero((s.kind == ALLOC) & (s.order >= min_order))
    slot = np.full(len(s.kind), -1, np.int64)
    slot[sel] = np.arange(len(sel))
    return slot, sel


def groups(ctx: Context, configs: list[Config]) -> list[Group]:
    """The configurations as replays; the first observed group records the series."""
    o = ctx.options
    top = int(ctx.stream.order.max())
    keyed: dict[tuple, list[str]] = {}
    for mode, n, search, policy in configs:
        shared = search != "coalesced" or all(
            memarea.grid(o.align, o.offset, k, memarea.COALESCED, n)
            == memarea.grid(o.align, o.offset, k, memarea.LINEAR, n)
            for k in range(n + 1, top + 1))
        keyed.setdefault((mode, n, policy, "shared" if shared else search), []).append(search)
    out: list[Group] = []
    series_taken = False
    for (mode, n, policy, _), searches in keyed.items():
        series = mode == "observed" and not series_taken
        series_taken |= series
        out.append(Group(mode, n, policy, tuple(searches), series))
    return out


def run_group(group: Group) -> list[RunResult]:
    """Run one group over the shared context (the forked pool's); one result per search."""
    assert _CTX is not None
    return replay_group(_CTX, group)


def replay_group(ctx: Context, group: Group) -> list[RunResult]:
    """Run one group over `ctx`; one result per search (also a fleet task's body)."""
    t0 = time.perf_counter()
    s = ctx.stream
    n = group.max_order
    baseline = group.searches == ("none",)
    searches = np.array([0 if x == "none" else memarea.SEARCHES.index(x)
                         for x in group.searches], np.int64)
    policy = 0 if baseline else POLICIES.index(group.policy)
    slot, sel = req_slots(ctx, COSTLY_ORDER + 1 if baseline else n + 1)
    m = len(sel)
    r_out = np.full(m, OUT_FAILED, np.int64)
    r_cost = np.zeros((m, len(searches)), np.int64)
    r_recl = np.zeros(m, np.int64)
    r_migr = np.zeros(m, np.int64)
    r_false = np.zeros(m, np.bool_)
    o = ctx.options
    grids = memarea.request_grids(s.order, o.align, o.offset, int(searches[0]), n)
    egrids = memarea.request_grids(s.order, o.align, o.offset, memarea.LINEAR, n)
    nz = len(ctx.zlo)
    samples = o.series_samples + 2
    ser_nr = np.zeros((samples, nz, SERIES_ORDERS), np.int64)
    ser_long = np.zeros((samples, nz), np.int64)
    ser_at = np.full(samples, -1, np.int64)
    extra: dict = {}
    if group.mode == "observed":
        every = ctx.sample_every if group.series else 0
        extra["inconsistencies"] = replay_observed(
            s.kind, s.pfn, s.order, s.pclass, s.zone_type, ctx.world.pcls.copy(),
            ctx.world.aorder.copy(), ctx.zlo, ctx.zhi, ctx.ztype, n, searches, policy, grids,
            egrids, slot, r_out, r_cost, r_recl, r_migr, r_false, every, ser_nr, ser_long,
            ser_at)
    else:
        state = new_state(ctx.world, nz, n, ctx.zlo, ctx.zhi)
        st = state.arrays()
        cursor = ctx.zlo.copy()
        if o.check:
            validate_buddy(state, ctx.zlo, ctx.zhi)
        every = max(ctx.sample_every, 1)
        k = 0
        for lo in range(0, len(s.kind) + 1, every):
            if k < samples:
                sample(st, ctx.zlo, ctx.zhi, n, ser_nr[k], ser_long[k])
                ser_at[k] = lo
                k += 1
            hi = min(lo + every, len(s.kind))
            if hi <= lo:
                break
            replay_simulated(st, cursor, s.kind, s.pfn, s.order, s.migratetype, s.pclass,
                             s.folio, s.zone_type, ctx.tzone, lo, hi, ctx.zlo, ctx.zhi,
                             ctx.ztype, ctx.wmin, ctx.wlow, ctx.prot, n, state.pb_order, ctx.era,
                             ctx.nofragment, searches, policy, grids, egrids, slot, r_out,
                             r_cost, r_recl, r_migr, r_false)
            if o.check:
                validate_buddy(state, ctx.zlo, ctx.zhi)
        if k < samples and ser_at[k - 1] != len(s.kind):
            sample(st, ctx.zlo, ctx.zhi, n, ser_nr[k], ser_long[k])
            ser_at[k] = len(s.kind)
        extra["counters"] = state.ctr.copy()
        extra["end_blocks"] = state.nr_free.sum(axis=2)
        extra["end_pcp"] = np.array([int((state.pcls[lo:hi] == PCP).sum())
                                     for lo, hi in zip(ctx.zlo, ctx.zhi)], np.int64)
    keep = ser_at >= 0
    elapsed = (time.perf_counter() - t0) / len(searches)
    return [RunResult((group.mode, n, name, group.policy), sel, r_out, r_cost[:, j].copy(),
                      r_recl, r_migr, r_false, ser_at[keep], ser_nr[keep], ser_long[keep],
                      elapsed, **extra)
            for j, name in enumerate(group.searches)]


def run_configs(ctx: Context, configs: list[Config], quiet: bool = False) -> list[RunResult]:
    """Every configuration, the baseline (configs[0]) in this process first, the rest over
    the options' worker count; results in the order of `configs`."""
    global _CTX
    _CTX = ctx
    gs = groups(ctx, configs)
    results: list[RunResult] = []
    jobs = ctx.options.jobs or os.cpu_count() or 1
    with progress_bar("simulate", len(gs), quiet=quiet, unit_bytes=False) as bar:
        results += run_group(gs[0])  # compiles in the parent
        bar.update(1)
        if jobs > 1 and len(gs) > 2:
            # the longest replays first: simulated before observed, low N before high
            order = sorted(range(1, len(gs)),
                           key=lambda i: (gs[i].mode != "simulated", gs[i].max_order))
            with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as pool:
                futures = {pool.submit(run_group, gs[i]): i for i in order}
                done = {}
                for f in as_completed(futures):
                    done[futures[f]] = f.result()
                    bar.update(len(done) + 1)
            for i in sorted(done):
                results += done[i]
        else:
            for i, g in enumerate(gs[1:], 2):
                results += run_group(g)
                bar.update(i)
    by_cfg = {r.config: r for r in results}
    return [by_cfg[c] for c in configs]
