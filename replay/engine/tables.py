"""The engine's output tables, `requests`, `runs` and `series` (sim/*.parquet).

requests: one row per request above the max order N, per configuration (the baseline's:
the requests above PAGE_ALLOC_COSTLY_ORDER). runs: one row per configuration. series:
free blocks and the kernel's fragmentation indices per zone and order over time. The
columns of each are listed in the `*_COLUMNS` tuples, each with its meaning; the writer
checks every table against them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from replay.dataset import EVENTS_FILE
from replay.engine.buddy import COUNTERS
from replay.engine.context import Context
from replay.engine.fidelity import Fidelity
from replay.engine.measures import indices
from replay.engine.observed import EVIDENCE, INCONSISTENCIES, OUT_FAILED, OUT_FREE, OUTCOMES
from replay.engine.rows import take_rows
from replay.engine.sweep import RunResult
from replay.kernel.fallbacks import ERA_NAMES
from replay.kernel.pagestate import BUDDY, PCP

#: What building these tables imports: pyarrow imports pandas (about 0.2 s) on its first
#: conversion of Python or numpy values, whether or not they are pandas objects.
IMPORTS = ("pandas",)
#: requests.parquet columns.
REQUEST_COLUMNS = {
    "mode": "observed or simulated", "max_order": "candidate max order N",
    "search": "memarea search (none: the baseline)", "policy": "memarea policy",
    "seq": "seq of the mm_page_alloc event", "ts_ns": "its time", "order": "its order",
    "gfp_flags": "its gfp flags", "migratetype": "engine migratetype (4.4+ numbering)",
    "pid": "thread", "comm": "command", "stack_id": "call stack (stacks view)",
    "real_outcome": "success or failed in the traced kernel",
    "outcome": "buddy, memarea_free, memarea_reclaim, memarea_migrate or failed",
    "cost": "search cost (pages, max-order blocks or 64-bit words)",
    "pages_reclaimed": "page cache pages dropped", "pages_migrated": "pages migrated",
    "false_failure": "failed although a free-or-freeable run existed",
}


#: real_outcome's labels, by whether the traced kernel failed the request.
REAL_OUTCOMES = ["success", "failed"]


def _dict_cols(table: pa.Table, names: tuple[str, ...]) -> pa.Table:
    return table.cast(pa.schema([
        f.with_type(pa.dictionary(pa.int32(), pa.string())) if f.name in names else f
        for f in table.schema]))


def _labels(codes: np.ndarray, names: list[str]) -> pa.DictionaryArray:
    """Per-row labels as int32 codes into `names`: a table of millions of rows repeats a
    handful of strings (held as strings, they made the requests table the peak of a
    6 M-event report)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()),
                                          pa.array(names, pa.string()))


def _constant(value: str, names: list[str], m: int) -> pa.DictionaryArray:
    return _labels(np.full(m, names.index(value), np.int32), names)


def requests_table(dataset: Path, ctx: Context, results: list[RunResult]) -> pa.Table:
    """One row per request slot of every configuration."""
    s = ctx.stream
    all_sel = np.unique(np.concatenate([r.sel for r in results]))
    # the strings as codes once per request, before the configurations' copies of them
    ev = _dict_cols(take_rows(dataset / EVENTS_FILE,
                              ["seq", "ts_ns", "pid", "comm", "gfp_flags", "stack_id"],
                              s.row[all_sel]), ("comm", "gfp_flags"))
    modes, searches, policies = ([*dict.fromkeys(r.config[k] for r in results)]
                                 for k in (0, 2, 3))
    parts = []
    for r in results:
        mode, n, search, policy = r.config
        m = len(r.sel)
        sub = ev.take(pa.array(np.searchsorted(all_sel, r.sel), pa.int64()))
        parts.append(pa.table({
            "mode": _constant(mode, modes, m), "max_order": pa.array(np.full(m, n, np.int16)),
            "search": _constant(search, searches, m),
            "policy": _constant(policy, policies, m),
            "seq": sub.column("seq"), "ts_ns": sub.column("ts_ns"),
            "order": pa.array(s.order[r.sel].astype(np.int16)),
            "gfp_flags": sub.column("gfp_flags"),
            "migratetype": pa.array(s.migratetype[r.sel].astype(np.int16)),
            "pid": sub.column("pid"), "comm": sub.column("comm"),
            "stack_id": sub.column("stack_id"),
            "real_outcome": _labels((s.pfn[r.sel] < 0).astype(np.int32), REAL_OUTCOMES),
            "outcome": _labels(r.out.astype(np.int32), list(OUTCOMES)),
            "cost": pa.array(r.cost),
            "pages_reclaimed": pa.array(r.reclaimed), "pages_migrated": pa.array(r.migrated),
            "false_failure": pa.array(r.false),
        }))
    table = pa.concat_tables(parts)  # the writer cuts row groups across the chunks
    assert tuple(table.column_names) == tuple(REQUEST_COLUMNS)
    return table


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def world_columns(ctx: Context, fid: Fidelity) -> dict[str, Any]:
    """The runs columns every configuration shares: the world at trace start and the
    baseline's fidelity (computed once per sweep: the world has a slot per page)."""
    world = ctx.world
    return {
        "world_pages": int(world.world_pages.sum()),
        "pages_touched": int(world.seen_pages.sum()),
        "pages_free_at_start": int((world.pcls == BUDDY).sum()),
        "pages_pcp_at_start": int((world.pcls == PCP).sum()),
        "pages_online": world.online_pages,
        "fidelity_agreement_share": fid.agreement_share,
        "fidelity_fallbacks": fid.fallbacks, "fidelity_extfrag": fid.extfrag,
    }


def run_row(ctx: Context, r: RunResult, fid: Fidelity, inconsistencies: np.ndarray,
            shared: dict[str, Any]) -> dict[str, Any]:
    """The runs row of one configuration (`shared`: its `world_columns`)."""
    mode, n, search, policy = r.config
    s = ctx.stream
    out = r.out
    m = len(out)
    counts = np.bincount(out, minlength=len(OUTCOMES))
    real_ok = s.pfn[r.sel] >= 0
    costs = r.cost[(out >= OUT_FREE)]
    row: dict[str, Any] = {
        "mode": mode, "max_order": n, "search": search, "policy": policy,
        "evidence": EVIDENCE if mode == "observed" else "feasibility and cost (model)",
        "align": ctx.options.align, "offset": ctx.options.offset,
        "world": ctx.world.source, "world_estimate": ctx.world.estimate,
        "kernel_release": ctx.release_text, "fallback_era": ERA_NAMES[ctx.era],
        "pcp_traced": s.pcp_traced, "events": s.events, "requests": m,
        **{o: int(counts[i]) for i, o in enumerate(OUTCOMES)},
        "success_share": float((out < OUT_FAILED).sum() / m) if m else None,
        "real_failed": int((~real_ok).sum()),
        "false_failures": int(r.false.sum()),
        "true_failures": int(((out == OUT_FAILED) & ~r.false).sum()),
        "memarea_requests": int((out >= OUT_FREE).sum()) if search != "none" else 0,
        "cost_p50": _percentile(costs, 50), "cost_p90": _percentile(costs, 90),
        "cost_p99": _percentile(costs, 99),
        "cost_max": int(costs.max()) if len(costs) else None,
        "pages_reclaimed": int(r.reclaimed.sum()), "pages_migrated": int(r.migrated.sum()),
    }
    c = r.counters
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
    incons = r.inconsistencies if r.inconsistencies is not None else inconsistencies
    row.update({k: int(v) for k, v in zip(INCONSISTENCIES, incons)})
    row.update(shared)
    row.update({
        "end_blocks": r.end_blocks.sum(axis=0).tolist() if r.end_blocks is not None else None,
        "zone_fidelity": ([{"zone": k, **_flat(v)} for k, v in fid.zones.items()]
                          if search == "none" else None),
        "elapsed_s": r.elapsed,
    })
    return row


def _flat(z) -> dict[str, Any]:
    """A zone's fidelity as flat columns (model/proc pairs side by side)."""
    return {"managed": z.managed, "world_pages": z.world_pages, "seen_pages": z.seen_pages,
            "start_free_pages_model": z.start_free_pages.model,
            "start_free_pages_proc": z.start_free_pages.proc,
            "end_free_pages_model": z.end_free_pages.model,
            "end_free_pages_proc": z.end_free_pages.proc,
            "start_blocks_model": z.start_blocks.model, "start_blocks_proc": z.start_blocks.proc,
            "end_blocks_model": z.end_blocks.model, "end_blocks_proc": z.end_blocks.proc,
            "end_pcp_pages_model": z.end_pcp_pages.model,
            "end_pcp_pages_proc": z.end_pcp_pages.proc}


def series_table(ctx: Context, r: RunResult) -> pa.Table | None:
    """The fragmentation series of one configuration (None if it recorded none)."""
    at = r.ser_at
    if not len(at):
        return None
    mode, n, search, policy = r.config
    nr = r.ser_nr  # sample x zone x order
    k, nz, no = nr.shape
    ui, fi = indices(nr, no)
    names = np.array([z.name for z in ctx.layout.zones])
    s = ctx.stream
    ts = s.ts_ns[np.minimum(at, len(s.ts_ns) - 1)]
    per_sample = nz * no
    t = pa.table({
        "event_index": np.repeat(at, per_sample), "ts_ns": np.repeat(ts, per_sample),
        "zone": np.tile(np.repeat(names, no), k), "order": np.tile(np.arange(no), k * nz),
        "free_blocks": nr.ravel(), "unusable_index": ui.ravel(),
        "fragmentation_index": fi.ravel(),
        "largest_free_run": np.repeat(r.ser_long.ravel(), no),
    })
    m = t.num_rows
    return t.add_column(0, "mode", pa.repeat(mode, m)).add_column(
        1, "max_order", pa.repeat(pa.scalar(n, pa.int16()), m)).add_column(
        2, "search", pa.repeat(search, m)).add_column(3, "policy", pa.repeat(policy, m))


def output_tables(dataset: Path, ctx: Context, results: list[RunResult], fid: Fidelity,
                  inconsistencies: np.ndarray) -> dict[str, pa.Table]:
    """requests, runs and series of a sweep."""
    shared = world_columns(ctx, fid)
    runs = pa.Table.from_pylist([run_row(ctx, r, fid, inconsistencies, shared)
                                 for r in results])
    parts = [p for p in (series_table(ctx, r) for r in results) if p is not None]
    return {"requests": requests_table(dataset, ctx, results), "runs": runs,
            "series": pa.concat_tables(parts) if parts else pa.table({})}
