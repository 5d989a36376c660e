"""`replay simulate`: the sweep of configurations over a dataset, written to DATASET/sim.

Loads the stream, the snapshots and the world once (context.py), runs every configuration
(sweep.py; the baseline, N = the traced kernel's max order, first), measures the model's
fidelity (fidelity.py) and writes `sim/requests.parquet`, `runs.parquet` and
`series.parquet` (tables.py) atomically, each carrying the options that produced it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from replay import signals
from replay.atomic import OLD, TMP, OutputLock, cannot_write, remove_stale, sibling
from replay.engine.context import Context, prepare
from replay.engine.buddy import C_CLAIMS, C_STEALS
from replay.engine.fidelity import Fidelity, zone_fidelity
from replay.engine.measures import free_blocks
from replay.engine.observed import INCONSISTENCIES, OUT_BUDDY, SERIES_ORDERS, replay_observed
from replay.engine.options import SimOptions
from replay.engine.sweep import RunResult, run_configs
from replay.engine.tables import IMPORTS, output_tables
from replay.engine.warmup import announce_and_compile
from replay.kernel.fallbacks import ERA_NAMES

SIM_DIR = "sim"
#: Columns whose min/max a table's Parquet file keeps, where not all: the requests' are
#: millions of rows in configuration order, and queries select them by configuration and
#: join them on seq (the statistics of all 18 columns took a third of its writing).
STATISTICS = {"requests": ["mode", "max_order", "search", "policy", "seq"]}


@dataclass
class SweepSummary:
    """What `replay simulate` prints: the runs table, fidelity, and the world."""

    runs: pa.Table
    fidelity: Fidelity
    layout: str
    elapsed: float
    events: int
    inconsistencies: dict[str, int]


def observed_end(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """(free blocks per zone/order in the buddy lists at trace end, as a fully coalesced
    buddy allocator would hold them; inconsistency counts) from a plain observed replay."""
    s = ctx.stream
    pcls = ctx.world.pcls.copy()
    none = np.full(len(s.kind), -1, np.int64)
    empty = np.zeros(0, np.int64)
    grids = np.zeros((int(s.order.max()) + 1, 2), np.int64)
    bad = replay_observed(s.kind, s.pfn, s.order, s.pclass, s.zone_type, pcls,
                          ctx.world.aorder.copy(), ctx.zlo, ctx.zhi, ctx.ztype,
                          ctx.kernel_max_order, np.zeros(1, np.int64), 0, grids, grids, none,
                          empty, np.zeros((0, 1), np.int64), empty, empty,
                          np.zeros(0, np.bool_), 0, np.zeros((0, 1, 1), np.int64),
                          np.zeros((0, 1), np.int64), empty)
    out = np.zeros((len(ctx.zlo), SERIES_ORDERS), np.int64)
    for z in range(len(ctx.zlo)):
        free_blocks(pcls, ctx.zlo[z], ctx.zhi[z], SERIES_ORDERS - 1, out[z])
    return out, bad


def measure_fidelity(ctx: Context, base: RunResult, end_observed: np.ndarray) -> Fidelity:
    """The baseline against the trace and the snapshots."""
    s = ctx.stream
    real_ok = s.pfn[base.sel] >= 0
    sim_ok = base.out == OUT_BUDDY
    agree = int((real_ok == sim_ok).sum())
    assert base.counters is not None and base.end_blocks is not None
    zones = zone_fidelity(ctx.world, ctx.snaps, base.end_blocks, end_observed, base.end_pcp,
                          base.end_type_blocks)
    notes = list(ctx.world.notes)
    if not s.pcp_traced:
        notes.append("the trace lacks mm_page_alloc_zone_locked / mm_page_pcpu_drain: the "
                     "per-CPU lists are invisible, every free goes to the buddy lists")
    if s.unplaceable:
        notes.append(f"{s.unplaceable} events name a page only by its struct page pointer "
                     "(kernels before 4.1): they cannot be placed and are skipped")
    return Fidelity(
        baseline_max_order=ctx.kernel_max_order, kernel_release=ctx.release_text,
        fallback_era=ERA_NAMES[ctx.era], world_source=ctx.world.source,
        world_estimate=ctx.world.estimate, requests_above_costly=int(len(real_ok)),
        agreement=agree, agreement_share=agree / len(real_ok) if len(real_ok) else None,
        real_failed=int((~real_ok).sum()), sim_failed=int((~sim_ok).sum()),
        fallbacks=int(base.counters[C_CLAIMS] + base.counters[C_STEALS]),
        extfrag=s.extfrag, zones=zones, notes=notes)


def run_sweep(dataset: Path, options: SimOptions, quiet: bool = False) -> SweepSummary:
    """Run every configuration of `options` on `dataset`; write DATASET/sim."""
    dataset = Path(dataset)
    t0 = time.perf_counter()
    ctx = prepare(dataset, options)
    announce_and_compile(options, quiet)
    # before the pool forks: its workers inherit the compiled observed replay
    observed = observed_end(ctx)
    # what pyarrow's allocator keeps of the ingest's and the stream's buffers goes back to
    # the kernel: the workers' fresh per-page state starts on recently used pages
    pa.default_memory_pool().release_unused()
    # the tables' imports load while the workers replay
    results = run_configs(ctx, options.configurations(ctx.kernel_max_order), quiet,
                          imports=IMPORTS)
    return finish_sweep(dataset, ctx, results, observed, t0)


def finish_sweep(dataset: Path, ctx: Context, results: list[RunResult],
                 observed: tuple[np.ndarray, np.ndarray], t0: float) -> SweepSummary:
    """From every configuration's result (in `configurations` order) and `observed_end`:
    the fidelity and the tables, written to DATASET/sim (also the fleet's last step of a
    sweep whose groups ran on a cluster)."""
    end_observed, inconsistencies = observed
    fid = measure_fidelity(ctx, results[0], end_observed)
    tables = output_tables(dataset, ctx, results, fid, inconsistencies)
    write_sim(dataset, ctx.options, tables, fid)
    return SweepSummary(tables["runs"], fid, ctx.layout.describe(),
                        time.perf_counter() - t0, ctx.stream.events,
                        dict(zip(INCONSISTENCIES, map(int, inconsistencies))))


def write_sim(dataset: Path, options: SimOptions, tables: dict[str, pa.Table],
              fid: Fidelity) -> Path:
    """Write sim/{requests,runs,series}.parquet and fidelity.json under a temporary name,
    then rename: one writer at a time (a lock), stale leftovers of dead runs removed, and
    nothing put in place once a stop signal arrived."""
    out = dataset / SIM_DIR
    meta = {"replay.sim_options": json.dumps(asdict(options))}
    with OutputLock(out):
        remove_stale(out)
        tmp = sibling(out, TMP)
        try:
            tmp.mkdir()
            for name, table in tables.items():
                table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                       **meta})
                pq.write_table(table, tmp / f"{name}.parquet", compression="zstd",
                               write_statistics=STATISTICS.get(name, True))
            (tmp / "options.json").write_text(json.dumps(asdict(options), indent=2) + "\n")
            (tmp / "fidelity.json").write_text(json.dumps(fid.as_dict(), indent=1) + "\n")
            signals.check()  # a stop signal: nothing goes in place
            old = None
            if out.exists():
                old = sibling(out, OLD)
                out.rename(old)
            tmp.rename(out)
            if old is not None:
                shutil.rmtree(old)
        except OSError as e:
            raise cannot_write(out, e) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out
