"""The sweep driver: configurations (mode x max order x search x policy) over all cores.

Loads the stream and the layout once, builds the observed initial state, runs every
configuration in a process pool (fork: the workers share the arrays), and writes
`DATASET/sim/requests.parquet`, `runs.parquet` and `series.parquet` atomically, each
carrying the options (`SimOptions`) that produced it. A baseline simulation at the traced
kernel's max order always runs: its agreement with what really happened is the model's
fidelity.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from replay.dataset import EVENTS_FILE, SNAPSHOTS_DIR, read_meta
from replay.engine import memarea
from replay.engine.buddy import COUNTERS
from replay.engine.end_state import end_state_agreement, pcp_pages
from replay.engine.layout import KERNEL_MAX_ORDER, Layout, find_snapshot, load_layout, \
    parse_buddyinfo
from replay.engine.measures import free_blocks, indices
from replay.engine.observed import (
    INCONSISTENCIES,
    OUTCOMES,
    SERIES_ORDERS,
    initial_state,
    replay_observed,
)
from replay.engine.simulated import new_state, replay_simulated, sample
from replay.engine.stream import ALLOC, Stream, load_stream
from replay.engine.validate import validate_buddy
from ingest.errors import InputError, OutputError
from replay.progress import progress_bar
from replay.dataset import KPAGEFLAGS
from replay.kernel.procfs import kpageflags_free

SIM_DIR = "sim"
MODES = ("observed", "simulated")
#: PAGE_ALLOC_COSTLY_ORDER: the baseline's fidelity is judged on requests above it.
COSTLY_ORDER = 3


@dataclass(frozen=True)
class SimOptions:
    """Everything that changes a simulation's results; written into every output."""

    #: candidate max orders N: the largest order the buddy allocator serves, inclusive
    #: (MAX_PAGE_ORDER semantics of Linux 6.4+; a 2.4-era MAX_ORDER of N+1)
    max_orders: tuple[int, ...] = (5, 6, 7, 8, 9, 10)
    #: memarea searches: linear (pages), coalesced (max-order blocks), bitmap (64-bit words)
    searches: tuple[str, ...] = memarea.SEARCHES
    #: memarea policies, nested: free, reclaim (also drop reclaimable / page cache),
    #: migrate (also move movable pages)
    policies: tuple[str, ...] = memarea.POLICIES
    #: observed (memarea judged in the real state) and/or simulated (buddy of max order N)
    modes: tuple[str, ...] = MODES
    #: run alignment in pages; 0 means aligned to the request size (as buddy blocks are)
    align: int = 0
    #: run offset: a run starts at s with s % align == offset
    offset: int = 0
    #: pages never seen in the trace: "allocated" (conservative) or "free"
    unknown: str = "allocated"
    #: zoneinfo file for the layout (else the dataset's snapshot, else inferred)
    zoneinfo: str | None = None
    #: directory of /proc snapshots (start-zoneinfo, end-buddyinfo; else DATASET/snapshots)
    snapshots: str | None = None
    #: validate the simulator's invariants at every series sample (slow)
    check: bool = False
    #: points in time at which fragmentation is sampled
    series_samples: int = 64
    #: the traced kernel's max order (the baseline)
    kernel_max_order: int = KERNEL_MAX_ORDER
    #: worker processes (0: every core)
    jobs: int = 0

    def configurations(self) -> list[tuple[str, int, str, str]]:
        """(mode, max order, search, policy), the baseline first."""
        out = [("simulated", self.kernel_max_order, "none", "none")]
        for mode in self.modes:
            for n in self.max_orders:
                for s in self.searches:
                    for p in self.policies:
                        out.append((mode, n, s, p))
        return out

    def snapshot_dir(self, dataset: Path) -> Path:
        """Where the /proc snapshots are: `snapshots`, else DATASET/snapshots."""
        return Path(self.snapshots) if self.snapshots else Path(dataset) / SNAPSHOTS_DIR

    def validate(self) -> None:
        from typer import BadParameter

        if not self.max_orders or any(not 0 <= n <= 20 for n in self.max_orders):
            raise BadParameter("max orders must lie in 0..20")
        for name, values, known in (("search", self.searches, memarea.SEARCHES),
                                    ("policy", self.policies, memarea.POLICIES),
                                    ("mode", self.modes, MODES)):
            bad = [v for v in values if v not in known]
            if bad or not values:
                raise BadParameter(f"unknown {name} {bad}: choose from {', '.join(known)}")
        if self.align < 0 or self.offset < 0 or (self.align and self.offset >= self.align):
            raise BadParameter("need align >= 0 and 0 <= offset < align")
        if self.unknown not in ("allocated", "free"):
            raise BadParameter("--unknown is allocated or free")


@dataclass
class Context:
    """What every configuration shares (inherited by the forked workers)."""

    stream: Stream
    layout: Layout
    zlo: np.ndarray
    zhi: np.ndarray
    ztype: np.ndarray
    npages: int
    pcls0: np.ndarray
    aorder0: np.ndarray
    start_counts: np.ndarray
    options: SimOptions
    sample_every: int
    alo: np.ndarray  # per zone, the pages [alo, ahi) that can ever be free: outside them
    ahi: np.ndarray  # every page is unknown, held allocated (unless --unknown free)
    #: where the state of never-seen pages came from: `kpageflags FILE` or --unknown's value
    unseen_source: str = ""
    #: never-seen pages that start free
    unseen_free: int = 0


_CTX: Context | None = None


def _req_slots(ctx: Context, min_order: int) -> tuple[np.ndarray, np.ndarray]:
    """(slot per stream entry or -1, stream index per slot) for allocations >= min_order."""
    s = ctx.stream
    sel = np.flatnonzero((s.kind == ALLOC) & (s.order >= min_order))
    slot = np.full(len(s.kind), -1, np.int64)
    slot[sel] = np.arange(len(sel))
    return slot, sel


def _grids(ctx: Context, search: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    o = ctx.options
    orders = ctx.stream.order
    return (memarea.request_grids(orders, o.align, o.offset, search, n),
            memarea.request_grids(orders, o.align, o.offset, memarea.LINEAR, n))


Group = tuple[str, int, str, tuple[str, ...], bool]  # mode, N, policy, searches, series


def _groups(ctx: Context, configs: list[tuple[str, int, str, str]]) -> list[Group]:
    """Configurations that differ only in a search sharing one candidate grid run as one
    replay: they find the same runs (memarea's module docstring), so only their costs
    differ. `coalesced` shares unless the alignment cuts max-order blocks. The first
    observed group records the observed series (the same for every observed run)."""
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
        out.append((mode, n, policy, tuple(searches), series))
    return out


def run_group(group: Group) -> list[dict[str, Any]]:
    """Run one group of configurations over the shared context; one result per search."""
    ctx = _CTX
    assert ctx is not None
    mode, n, policy_name, search_names, record_series = group
    t0 = time.perf_counter()
    s = ctx.stream
    baseline = search_names == ("none",)
    searches = np.array([0 if x == "none" else memarea.SEARCHES.index(x)
                         for x in search_names], np.int64)
    policy = memarea.POLICIES.index(policy_name) if not baseline else 0
    slot, sel = _req_slots(ctx, COSTLY_ORDER + 1 if baseline else n + 1)
    m = len(sel)
    r_out = np.full(m, 4, np.int64)
    r_cost = np.zeros((m, len(searches)), np.int64)
    r_recl = np.zeros(m, np.int64)
    r_migr = np.zeros(m, np.int64)
    r_false = np.zeros(m, np.bool_)
    grids, egrids = _grids(ctx, int(searches[0]), n)
    nz = len(ctx.zlo)
    samples = ctx.options.series_samples + 2
    ser_nr = np.zeros((samples, nz, SERIES_ORDERS), np.int64)
    ser_long = np.zeros((samples, nz), np.int64)
    ser_at = np.full(samples, -1, np.int64)
    result: dict[str, Any] = {}
    if mode == "observed":
        pcls = ctx.pcls0.copy()
        aorder = ctx.aorder0.copy()
        every = ctx.sample_every if record_series else 0
        bad = replay_observed(s.kind, s.pfn, s.order, s.pclass, s.zone_type, pcls, aorder,
                              ctx.zlo, ctx.zhi, ctx.ztype, n, searches, policy, grids, egrids,
                              slot, r_out, r_cost, r_recl, r_migr, r_false, every, ctx.alo,
                              ctx.ahi, ser_nr, ser_long, ser_at)
        result["inconsistencies"] = bad
        result["counters"] = None
    else:
        state = new_state(ctx.npages, nz, n, s, ctx.pcls0, ctx.aorder0, ctx.zlo, ctx.zhi)
        st = state.arrays()
        cursor = ctx.zlo.copy()
        if ctx.options.check:
            validate_buddy(state, ctx.zlo, ctx.zhi)
        every = max(ctx.sample_every, 1)
        k = 0
        for lo in range(0, len(s.kind) + 1, every):
            if k < samples:
                sample(st, ctx.alo, ctx.ahi, n, ser_nr[k], ser_long[k])
                ser_at[k] = lo
                k += 1
            hi = min(lo + every, len(s.kind))
            if hi <= lo:
                break
            replay_simulated(st, cursor, s.kind, s.pfn, s.order, s.migratetype, s.pclass,
                             s.zone_type, lo, hi, ctx.zlo, ctx.zhi, ctx.ztype, n,
                             state.pb_order, searches, policy, grids, egrids, slot, r_out,
                             r_cost, r_recl, r_migr, r_false)
            if ctx.options.check:
                validate_buddy(state, ctx.zlo, ctx.zhi)
        if k < samples and ser_at[k - 1] != len(s.kind):
            sample(st, ctx.alo, ctx.ahi, n, ser_nr[k], ser_long[k])
            ser_at[k] = len(s.kind)
        result["counters"] = state.ctr.copy()
        result["inconsistencies"] = None
        result["end_blocks"] = state.nr_free.sum(axis=2)  # zone x order
    keep = ser_at >= 0
    result.update(sel=sel, out=r_out, reclaimed=r_recl, migrated=r_migr, false=r_false,
                  ser_at=ser_at[keep], ser_nr=ser_nr[keep], ser_long=ser_long[keep],
                  elapsed=(time.perf_counter() - t0) / len(searches))
    return [{**result, "cfg": (mode, n, name, policy_name), "cost": r_cost[:, j].copy()}
            for j, name in enumerate(search_names)]


def prepare(dataset: Path, options: SimOptions) -> Context:
    """Load the stream and layout of a dataset, and build the observed initial state."""
    stream = load_stream(dataset)
    if not len(stream.kind):
        raise InputError(dataset, "no mm_page_alloc / mm_page_free events to replay")
    snapdir = options.snapshot_dir(dataset)
    layout = load_layout(Path(options.zoneinfo) if options.zoneinfo else None, snapdir,
                         stream.pfn)
    kpageflags = find_snapshot(snapdir, KPAGEFLAGS)
    if kpageflags is None:
        return build_context(stream, layout, options)
    return build_context(stream, layout, options, kpageflags_free(kpageflags),
                         f"kpageflags {kpageflags}")


def build_context(stream: Stream, layout: Layout, options: SimOptions,
                  snap_free: np.ndarray | None = None, snap_source: str = "") -> Context:
    """The shared context for a stream on a layout: the observed initial state (never-seen
    pages free where `snap_free`, a start snapshot's free flag per pfn, says so)."""
    zlo, zhi, ztype = layout.arrays()
    npages = int(max(layout.end_pfn, stream.max_pfn)) + 1
    snap = np.zeros(0, np.uint8) if snap_free is None else snap_free
    pcls0, aorder0, counts = initial_state(stream.kind, stream.pfn, stream.order, npages,
                                           options.unknown == "free", zlo, zhi, snap)
    every = max(1, -(-len(stream.kind) // max(options.series_samples, 1)))
    # with a snapshot (or --unknown free) any page of a zone may be free; otherwise only
    # those between the lowest and highest pfn the trace touched
    if options.unknown == "free" or snap_free is not None:
        alo, ahi = zlo, zhi
    else:
        seen = stream.pfn >= 0
        first = int(stream.pfn[seen].min()) if seen.any() else 0
        last = int((stream.pfn[seen] + (np.int64(1) << stream.order[seen])).max()) \
            if seen.any() else 0
        alo = np.clip(first, zlo, zhi)
        ahi = np.maximum(np.clip(last, zlo, zhi), alo)
    in_zones = np.zeros(npages, bool)
    for lo, hi in zip(zlo, zhi):
        in_zones[lo:hi] = True
    unseen_free = int((pcls0[in_zones] == 0).sum()) - int(counts[0])
    return Context(stream, layout, zlo, zhi, ztype, npages, pcls0, aorder0, counts, options,
                   every, alo, ahi, unseen_source=snap_source if snap_free is not None else
                   f"--unknown {options.unknown}", unseen_free=unseen_free)


def run_in_process(ctx: Context, configs: list[tuple[str, int, str, str]]) -> list[dict]:
    """Run configurations in this process (tests, small inputs); results in their order."""
    global _CTX
    _CTX = ctx
    by_cfg = {r["cfg"]: r for g in _groups(ctx, configs) for r in run_group(g)}
    return [by_cfg[c] for c in configs]


def observed_end_blocks(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """(free blocks per zone/order at trace end as a fully coalesced buddy of the traced
    kernel would hold them, inconsistency counts) from a plain observed replay."""
    s = ctx.stream
    pcls = ctx.pcls0.copy()
    aorder = ctx.aorder0.copy()
    none = np.full(len(s.kind), -1, np.int64)
    empty = np.zeros(0, np.int64)
    grids = np.zeros((int(s.order.max()) + 1, 2), np.int64)
    bad = replay_observed(s.kind, s.pfn, s.order, s.pclass, s.zone_type, pcls, aorder,
                          ctx.zlo, ctx.zhi, ctx.ztype, ctx.options.kernel_max_order,
                          np.zeros(1, np.int64), 0, grids, grids, none, empty,
                          np.zeros((0, 1), np.int64), empty, empty, np.zeros(0, np.bool_),
                          0, ctx.alo, ctx.ahi, np.zeros((0, 1, 1), np.int64),
                          np.zeros((0, 1), np.int64), empty)
    out = np.zeros((len(ctx.zlo), SERIES_ORDERS), np.int64)
    for z in range(len(ctx.zlo)):
        free_blocks(pcls, ctx.alo[z], ctx.ahi[z], SERIES_ORDERS - 1, out[z])
    return out, bad


def run_sweep(dataset: Path, options: SimOptions, quiet: bool = False) -> dict[str, Any]:
    """Run every configuration of `options` on `dataset`; write DATASET/sim; return a
    summary (runs table, fidelity figures, layout) for the CLI."""
    global _CTX
    dataset = Path(dataset)
    meta = read_meta(dataset)
    t0 = time.perf_counter()
    ctx = prepare(dataset, options)
    _CTX = ctx
    end_observed, inconsistencies = observed_end_blocks(ctx)
    groups = _groups(ctx, options.configurations())
    results: list[dict[str, Any]] = []
    jobs = options.jobs or os.cpu_count() or 1
    with progress_bar("simulate", len(groups), quiet=quiet, unit_bytes=False) as bar:
        results += run_group(groups[0])  # the baseline; compiles in the parent
        bar.update(1)
        if jobs > 1 and len(groups) > 2:
            # the longest replays first: simulated before observed, low N before high
            order = sorted(range(1, len(groups)),
                           key=lambda i: (groups[i][0] != "simulated", groups[i][1]))
            with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as pool:
                futures = {pool.submit(run_group, groups[i]): i for i in order}
                done = {}
                for f in as_completed(futures):
                    done[futures[f]] = f.result()
                    bar.update(len(done) + 1)
            for i in sorted(done):
                results += done[i]
        else:
            for i, g in enumerate(groups[1:], 2):
                results += run_group(g)
                bar.update(i)
    snapdir = options.snapshot_dir(dataset)
    buddyinfo_path = find_snapshot(snapdir, "end-buddyinfo")
    buddyinfo = parse_buddyinfo(buddyinfo_path.read_text()) if buddyinfo_path else None
    zoneinfo_path = find_snapshot(snapdir, "end-zoneinfo")
    pcp = pcp_pages(zoneinfo_path.read_text()) if zoneinfo_path else None
    fidelity = _fidelity(ctx, results[0], end_observed, buddyinfo, pcp)
    tables = _tables(dataset, ctx, results, fidelity, inconsistencies)
    _write(dataset, options, tables)
    return {"runs": tables["runs"], "fidelity": fidelity, "layout": ctx.layout.describe(),
            "elapsed": time.perf_counter() - t0, "events": ctx.stream.events,
            "start_counts": ctx.start_counts, "unseen_free": ctx.unseen_free,
            "unseen_source": ctx.unseen_source,
            "inconsistencies": dict(
                zip(INCONSISTENCIES, map(int, inconsistencies))),
            "kernel": meta.get("kernel_release")}


def _fidelity(ctx: Context, base: dict[str, Any], end_observed: np.ndarray,
              buddyinfo: dict[str, list[int]] | None,
              pcp: dict[str, int] | None = None) -> dict[str, Any]:
    s = ctx.stream
    real_ok = s.pfn[base["sel"]] >= 0
    sim_ok = base["out"] == 0
    agree = int((real_ok == sim_ok).sum())
    end_sim = np.zeros(SERIES_ORDERS, np.int64)
    eb = base["end_blocks"].sum(axis=0)
    end_sim[:len(eb)] = eb[:SERIES_ORDERS]
    fid: dict[str, Any] = {
        "high_order_requests": int(len(real_ok)),
        "agreement": agree,
        "agreement_share": agree / len(real_ok) if len(real_ok) else None,
        "real_failed": int((~real_ok).sum()),
        "sim_failed": int((~sim_ok).sum()),
        "fallbacks": int(base["counters"][COUNTERS.index("claims")]
                         + base["counters"][COUNTERS.index("steals")]),
        "extfrag": s.extfrag,
        "end_blocks_simulated": end_sim.tolist(),
        "end_blocks_observed": end_observed.sum(axis=0).tolist(),
        "end_blocks_buddyinfo": None,
        "end_blocks_by_zone": [],
        "unseen_pages": ctx.unseen_source,
    }
    if buddyinfo:
        total = np.zeros(SERIES_ORDERS, np.int64)
        for counts in buddyinfo.values():
            total[:len(counts)] += np.array(counts[:SERIES_ORDERS], np.int64)
        fid["end_blocks_buddyinfo"] = total.tolist()
        fid["end_blocks_by_zone"] = end_state_agreement(ctx.layout, end_observed, buddyinfo,
                                                        pcp)
    return fid


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _tables(dataset: Path, ctx: Context, results: list[dict[str, Any]],
            fid: dict[str, Any], inconsistencies: np.ndarray) -> dict[str, pa.Table]:
    s = ctx.stream
    all_sel = np.unique(np.concatenate([r["sel"] for r in results]))
    rows = s.row[all_sel]
    ev = pq.read_table(dataset / EVENTS_FILE,
                       columns=["seq", "ts_ns", "pid", "comm", "gfp_flags", "stack_id"])
    ev = ev.take(pa.array(rows)).combine_chunks()
    req_parts = []
    run_rows = []
    ser_parts = []
    outcome_names = np.array(OUTCOMES)
    for r in results:
        mode, n, search, policy = r["cfg"]
        sel = r["sel"]
        m = len(sel)
        take = pa.array(np.searchsorted(all_sel, sel), pa.int64())  # all_sel is sorted
        real_ok = s.pfn[sel] >= 0
        sub = ev.take(take)
        req_parts.append(pa.table({
            "mode": pa.repeat(mode, m),
            "max_order": pa.array(np.full(m, n, np.int16)),
            "search": pa.repeat(search, m),
            "policy": pa.repeat(policy, m),
            "seq": sub.column("seq"), "ts_ns": sub.column("ts_ns"),
            "order": pa.array(s.order[sel].astype(np.int16)),
            "gfp_flags": sub.column("gfp_flags"), "migratetype": pa.array(
                s.migratetype[sel].astype(np.int16)),
            "pid": sub.column("pid"), "comm": sub.column("comm"),
            "stack_id": sub.column("stack_id"),
            "real_outcome": pa.array(np.where(real_ok, "success", "failed")),
            "outcome": pa.array(outcome_names[r["out"]]),
            "cost": pa.array(r["cost"]), "pages_reclaimed": pa.array(r["reclaimed"]),
            "pages_migrated": pa.array(r["migrated"]), "false_failure": pa.array(r["false"]),
        }))
        run_rows.append(_run_row(ctx, r, fid, inconsistencies))
        ser_parts.append(_series_rows(ctx, r))
    requests = pa.concat_tables(req_parts).combine_chunks()
    requests = requests.cast(pa.schema([
        f.with_type(pa.dictionary(pa.int32(), pa.string()))
        if f.name in ("mode", "search", "policy", "real_outcome", "outcome", "comm",
                      "gfp_flags") else f for f in requests.schema]))
    runs = pa.Table.from_pylist(run_rows)
    series = pa.concat_tables([p for p in ser_parts if p is not None]) if any(
        p is not None for p in ser_parts) else pa.table({})
    return {"requests": requests, "runs": runs, "series": series}


def _run_row(ctx: Context, r: dict[str, Any], fid: dict[str, Any],
             inconsistencies: np.ndarray) -> dict[str, Any]:
    mode, n, search, policy = r["cfg"]
    s = ctx.stream
    out = r["out"]
    m = len(out)
    counts = np.bincount(out, minlength=len(OUTCOMES))
    real_ok = s.pfn[r["sel"]] >= 0
    mem = out >= 1
    costs = r["cost"][(out >= 1) | (out == 4)]
    row: dict[str, Any] = {
        "mode": mode, "max_order": n, "search": search, "policy": policy,
        "align": ctx.options.align, "offset": ctx.options.offset,
        "unknown": "kpageflags" if ctx.unseen_source.startswith("kpageflags")
        else ctx.options.unknown, "events": s.events, "requests": m,
        **{o: int(counts[i]) for i, o in enumerate(OUTCOMES)},
        "success_share": float((out < 4).sum() / m) if m else None,
        "real_failed": int((~real_ok).sum()),
        "false_failures": int(r["false"].sum()),
        "true_failures": int(((out == 4) & ~r["false"]).sum()),
        "memarea_requests": int(mem.sum() + counts[4]) if search != "none" else 0,
        "cost_p50": _percentile(costs, 50), "cost_p90": _percentile(costs, 90),
        "cost_p99": _percentile(costs, 99),
        "cost_max": int(costs.max()) if len(costs) else None,
        "pages_reclaimed": int(r["reclaimed"].sum()),
        "pages_migrated": int(r["migrated"].sum()),
    }
    c = r["counters"]
    if c is not None:
        cd = dict(zip(COUNTERS, map(int, c)))
        row.update({k: cd[k] for k in COUNTERS if k not in row})
        row["splits_per_alloc"] = cd["split_steps"] / cd["allocs"] if cd["allocs"] else None
        row["merges_per_free"] = cd["merge_steps"] / cd["frees"] if cd["frees"] else None
        row["lists_per_alloc"] = cd["lists_probed"] / cd["allocs"] if cd["allocs"] else None
        row["fallbacks"] = cd["claims"] + cd["steals"]
    else:
        row.update({k: None for k in COUNTERS if k not in row})
        row.update(splits_per_alloc=None, merges_per_free=None, lists_per_alloc=None,
                   fallbacks=None)
    row["extfrag_trace"] = s.extfrag
    incons = r["inconsistencies"] if r["inconsistencies"] is not None else inconsistencies
    row.update({k: int(v) for k, v in zip(INCONSISTENCIES, incons)})
    row.update({
        "pages_free_at_start": int(ctx.start_counts[0]),
        "pages_allocated_before_trace": int(ctx.start_counts[1]),
        "pages_unknown": int(ctx.start_counts[2]),
        "pages_unknown_free_at_start": ctx.unseen_free,
        "fidelity_agreement_share": fid["agreement_share"],
        "fidelity_fallbacks": fid["fallbacks"], "fidelity_extfrag": fid["extfrag"],
        "end_blocks": (r["end_blocks"].sum(axis=0).tolist() if "end_blocks" in r else None),
        "end_blocks_observed": fid["end_blocks_observed"],
        "end_blocks_buddyinfo": fid["end_blocks_buddyinfo"],
        "elapsed_s": r["elapsed"],
    })
    return row


def _series_rows(ctx: Context, r: dict[str, Any]) -> pa.Table | None:
    at = r["ser_at"]
    if not len(at):
        return None
    mode, n, search, policy = r["cfg"]
    s = ctx.stream
    nr = r["ser_nr"]  # sample x zone x order
    k, nz, no = nr.shape
    ui = np.empty_like(nr)
    fi = np.empty_like(nr)
    for i in range(k):
        for z in range(nz):
            ui[i, z], fi[i, z] = indices(nr[i, z], no)
    names = np.array([z.name for z in ctx.layout.zones])
    ts = s.ts_ns[np.minimum(at, len(s.ts_ns) - 1)]
    per_sample = nz * no  # rows in sample-major, then zone, then order order
    t = pa.table({
        "event_index": np.repeat(at, per_sample),
        "ts_ns": np.repeat(ts, per_sample),
        "zone": np.tile(np.repeat(names, no), k),
        "order": np.tile(np.arange(no), k * nz),
        "free_blocks": nr.ravel(),
        "unusable_index": ui.ravel(),
        "fragmentation_index": fi.ravel(),
        "largest_free_run": np.repeat(r["ser_long"].ravel(), no),
    })
    m = t.num_rows
    return t.add_column(0, "mode", pa.repeat(mode, m)).add_column(
        1, "max_order", pa.repeat(pa.scalar(n, pa.int16()), m)).add_column(
        2, "search", pa.repeat(search, m)).add_column(3, "policy", pa.repeat(policy, m))


def _write(dataset: Path, options: SimOptions, tables: dict[str, pa.Table]) -> Path:
    """Write sim/{requests,runs,series}.parquet under a temporary name, then rename."""
    out = dataset / SIM_DIR
    tmp = dataset / f".{SIM_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    meta = {"replay.sim_options": json.dumps(asdict(options))}
    try:
        tmp.mkdir()
        for name, table in tables.items():
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
            pq.write_table(table, tmp / f"{name}.parquet", compression="zstd")
        (tmp / "options.json").write_text(json.dumps(asdict(options), indent=2) + "\n")
        old = None
        if out.exists():
            old = dataset / f".{SIM_DIR}.old-{os.getpid()}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"{out}: cannot write: {e.strerror}") from None
    return out
