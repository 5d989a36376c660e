"""Benchmark: the sweep on a Dask cluster of 1 and of 2 workers, and a fleet of 8 traces.

Usage: python tests/bench/bench_fleet.py [--trace TRACE] [--repeat K]
           [--max-order 5..10] [--fleet 8] [--fleet-max-order 8..10]

1. Ingests TRACE (default: sample_traces/ftrace-thp.trace.txt.xz, its ftrace text, played
   K = 40 times end to end with shifted timestamps: a load of ~1M events, not evidence;
   the replay counts the copies' double allocations as inconsistencies and skips them)
   into a temporary dataset, then times its sweep (`replay simulate --scheduler`: every configuration group a task) on a
   `distributed.LocalCluster` of 1 worker and of 2 (one thread each, processes), after a
   warm-up sweep that loads numba's on-disk cache in every worker. Goal: 2 workers take
   at most 0.6x the wall time of 1.
2. Times the fleet report of FLEET copies of TRACE (ingest + sweep + report of each), on
   the 2-worker cluster and locally (no scheduler: one trace after another, each sweep
   over the local process pool).

Prints wall seconds and the ratios; the figures in docs/fleet.md come from it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from timing import ROOT, repeated

sys.path.insert(0, str(ROOT))


def sweep_seconds(address: str, dataset: Path, options) -> float:  # noqa: ANN001
    """Wall seconds of one sweep of `dataset` on the cluster at `address`."""
    from replay.fleet.make import simulate_on_cluster

    t = time.perf_counter()
    simulate_on_cluster(dataset, options, address, quiet=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path,
                    default=ROOT / "sample_traces" / "ftrace-thp.trace.txt.xz")
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--max-order", default="5..10")
    ap.add_argument("--fleet", type=int, default=8)
    ap.add_argument("--fleet-max-order", default="8..10")
    args = ap.parse_args()

    from distributed import LocalCluster

    from replay.engine.options import SimOptions
    from replay.engine.sweep import groups
    from replay.fleet.make import make_fleet_report
    from replay.ingestion import ingest
    from replay.report.options import ReportOptions, parse_orders

    options = SimOptions(max_orders=parse_orders(args.max_order))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        trace = args.trace
        if args.repeat > 1:
            trace = repeated(trace, args.repeat, d / f"x{args.repeat}-{trace.name[:-3]}")
        dataset = ingest(trace, d / "one.replay", quiet=True)
        from replay.engine.context import prepare

        ctx = prepare(dataset, options)
        n = len(groups(ctx, options.configurations(ctx.kernel_max_order)))
        print(f"{trace.name}: {ctx.stream.events:,} events; sweep of max orders "
              f"{args.max_order}: {len(options.configurations(ctx.kernel_max_order))} "
              f"configurations in {n} groups (tasks)")
        del ctx
        from replay.engine.simulate import run_sweep

        for jobs in (1, 2):
            t = time.perf_counter()
            run_sweep(dataset, replace(options, jobs=jobs), quiet=True)
            print(f"local process pool, -j {jobs}: {time.perf_counter() - t:.2f} s")
        walls = {}
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                addr = cluster.scheduler_address
                sweep_seconds(addr, dataset, replace(options, max_orders=(10,)))  # warm-up
                walls[workers] = min(sweep_seconds(addr, dataset, options) for _ in range(2))
                print(f"sweep on {workers} worker(s): {walls[workers]:.2f} s (best of 2)")
                if workers == 2:
                    fleet = d / "fleet"
                    fleet.mkdir()
                    traces = []
                    for i in range(args.fleet):
                        traces.append(fleet / f"m{i}-{args.trace.name}")
                        shutil.copy(args.trace, traces[-1])
                    ropts = ReportOptions(max_orders=parse_orders(args.fleet_max_order))
                    t = time.perf_counter()
                    make_fleet_report(traces, fleet / "cluster.html", ropts, addr, quiet=True)
                    cl = time.perf_counter() - t
        print(f"2 workers / 1 worker: {walls[2] / walls[1]:.2f} (goal <= 0.6)")
        for p in fleet.glob("*.replay"):
            shutil.rmtree(p)
        t = time.perf_counter()
        make_fleet_report(traces, fleet / "local.html", ropts, None, quiet=True)
        lo = time.perf_counter() - t
        print(f"fleet of {args.fleet} x {args.trace.name}, report with max orders "
              f"{args.fleet_max_order} (ingest + sweep + report): 2 workers {cl:.2f} s, "
              f"local {lo:.2f} s")


if __name__ == "__main__":
    main()
