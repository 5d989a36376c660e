"""Running configurations: grouped where they cannot differ, in a pool of forked workers.

Configurations that differ only in a search sharing one candidate grid run as one replay
(they find the same runs: memarea.py), only their costs differ; `coalesced` shares unless
the alignment cuts max-order blocks. Groups that cannot differ either share one replay
(`chains`): the policies nest, so a replay whose requests never failed stands for the
larger policies; with no request (N at or above the largest allocated order) a simulated
N equal to the baseline's is the baseline, and observed runs differ only in their name.
The workers are forked, so they share the context's arrays without copying them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

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
from replay.workers import completed, fork_pool, importing_beside

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
    end_type_blocks: np.ndarray | None = None  # simulated: zone x order x migratetype
    end_pcp: np.ndarray | None = None  # simulated: per-CPU pages per zone at the end
    shared_from: Config | None = None  # the configuration whose replay this is, if another


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
        extra["end_type_blocks"] = state.nr_free.copy()
        extra["end_pcp"] = np.array([int((state.pcls[lo:hi] == PCP).sum())
                                     for lo, hi in zip(ctx.zlo, ctx.zhi)], np.int64)
    keep = ser_at >= 0
    elapsed = (time.perf_counter() - t0) / len(searches)
    return [RunResult((group.mode, n, name, group.policy), sel, r_out, r_cost[:, j].copy(),
                      r_recl, r_migr, r_false, ser_at[keep], ser_nr[keep], ser_long[keep],
                      elapsed, **extra)
            for j, name in enumerate(group.searches)]


def _alloc_top(ctx: Context) -> int:
    """The largest order the trace allocates: no request is above a max order N >= it."""
    s = ctx.stream
    orders = s.order[s.kind == ALLOC]
    return int(orders.max()) if len(orders) else -1


def chains(ctx: Context, gs: list[Group]) -> list[list[int]]:
    """The groups after the baseline (gs[0]) as chains of indices that may share a replay.

    A chain is one mode, max order and search set, its policies in nesting order: a run
    whose requests never failed is the same under every larger policy (memarea_request
    tries them cheapest first, and none of them was needed). Observed groups with no
    request (N at or above the largest allocated order) and no series form one chain
    across N: they replay the same occupancy and differ only in their name.
    """
    top = _alloc_top(ctx)
    keyed: dict[tuple, list[int]] = {}
    for i, g in enumerate(gs[1:], 1):
        if g.mode == "observed" and g.max_order >= top and not g.series:
            key: tuple = (g.mode, None, g.searches)
        else:
            key = (g.mode, g.max_order, g.searches, g.series)
        keyed.setdefault(key, []).append(i)
    rank = {p: k for k, p in enumerate(POLICIES)}
    return [sorted(c, key=lambda i: rank.get(gs[i].policy, -1)) for c in keyed.values()]


def copied(src: RunResult, config: Config, series: bool, slots: bool = True) -> RunResult:
    """`src` under another configuration's name: the same replay, not run again. Without
    `series` it carries no fragmentation series; without `slots`, no request."""
    none = np.zeros(0, np.int64)
    req = {} if slots else dict(sel=none, out=none, cost=none, reclaimed=none,
                                migrated=none, false=np.zeros(0, np.bool_))
    ser = {} if series else dict(ser_at=src.ser_at[:0], ser_nr=src.ser_nr[:0],
                                 ser_long=src.ser_long[:0])
    return replace(src, config=config, shared_from=src.config, **req, **ser)


def _records_series(g: Group) -> bool:
    return g.mode == "simulated" or g.series


def run_chain(chain: list[Group]) -> list[list[RunResult]]:
    """Run a chain's groups in order, reusing the last replay for a group its requests
    could not tell apart (`chains`); one result list per group."""
    out: list[list[RunResult]] = []
    src: dict[str, RunResult] | None = None  # last replay, by search, when nothing failed
    src_series = False
    for g in chain:
        if (src is not None and all(x in src for x in g.searches)
                and (src_series or not _records_series(g))):
            out.append([copied(src[x], (g.mode, g.max_order, x, g.policy),
                               _records_series(g)) for x in g.searches])
            continue
        res = run_group(g)
        out.append(res)
        failed = any((r.out == OUT_FAILED).any() for r in res)
        src = None if failed else {r.config[2]: r for r in res}
        src_series = _records_series(g)
    return out


def run_configs(ctx: Context, configs: list[Config], quiet: bool = False,
                share: bool = True, imports: Sequence[str] = ()) -> list[RunResult]:
    """Every configuration, the baseline (configs[0]) among them, over the options' worker
    count; results in the order of `configs`. With `share`, configurations that cannot
    differ share one replay (`chains`; a simulated N equal to the baseline's with no
    request is the baseline's replay, copied once it is done). `imports`: modules the
    caller needs next, imported while this process waits for its workers."""
    global _CTX
    _CTX = ctx
    gs = groups(ctx, configs)
    jobs = ctx.options.jobs or os.cpu_count() or 1
    work = chains(ctx, gs) if share else [[i] for i in range(1, len(gs))]
    same: list[int] = []  # groups that are the baseline's replay under another name
    if share and gs[0].mode == "simulated" and gs[0].searches == ("none",):
        top = _alloc_top(ctx)
        rest = []
        for c in work:
            same += [i for i in c if gs[i].mode == "simulated"
                     and gs[i].max_order == gs[0].max_order and gs[i].max_order >= top]
            if any(i not in same for i in c):
                rest.append([i for i in c if i not in same])
        work = rest
    # the longest replays first: simulated before observed, low N before high; the
    # baseline (the kernel's max order, and requests above COSTLY_ORDER) with them
    work.append([0])
    work.sort(key=lambda c: (gs[c[0]].mode != "simulated", gs[c[0]].max_order))
    results: list[RunResult] = []
    with progress_bar("simulate", len(gs), quiet=quiet, unit_bytes=False) as bar:
        finished = 0
        for chain_results in _run_chains(gs, work, jobs, imports):
            for res in chain_results:
                results += res
                finished += 1
            bar.update(finished)
        base = next(r for r in results if r.config == configs[0])
        results += [copied(base, (gs[i].mode, gs[i].max_order, x, gs[i].policy), True,
                           slots=False)
                    for i in same for x in gs[i].searches]
        bar.update(len(gs))
    by_cfg = {r.config: r for r in results}
    return [by_cfg[c] for c in configs]


def _run_chains(gs: list[Group], work: list[list[int]], jobs: int, imports: Sequence[str]
                ) -> Iterator[list[list[RunResult]]]:
    """Each chain's results as it finishes: in a pool of forked workers when there are
    several chains and workers (this process imports `imports` while it waits), else in
    this process."""
    if jobs > 1 and len(work) > 1:
        with fork_pool(jobs) as pool:  # workers die with this process
            # a fork pool starts all its workers at the first submit: no fork after this
            futures = [pool.submit(run_chain, [gs[i] for i in c]) for c in work]
            with importing_beside(imports):
                for f in completed(futures):
                    yield f.result()
    else:
        for c in work:
            yield run_chain([gs[i] for i in c])
