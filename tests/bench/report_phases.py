"""Where `replay report` spends its time: one run in this process, each phase timed.

    python tests/bench/report_phases.py TRACE OUTPUT.html [--snapshots DIR] [--max-order 3..10]

Wraps the functions `replay report` calls in turn (ingest; the engine's context, observed
end state, sweep, tables and write; the report's figures from DuckDB, its plots and its
renderers; the trace figures and the plots are the waits for the side process) with wall-clock timers and prints
one line per phase, then the replay seconds of each mode summed over the sweep's worker
processes (a shared replay counts once), the slowest replays, and how many configurations
shared another's replay. The report is the same as the CLI's.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

from timing import ROOT

sys.path.insert(0, str(ROOT))

PHASES: dict[str, float] = defaultdict(float)
#: how many of the slowest replays to name
SLOWEST = 3
#: (module, function, phase) timed; the modules call them through their own globals.
TIMED = (
    ("replay.ingestion", "ingest", "ingest"),
    ("replay.engine.simulate", "prepare", "engine: stream, world, context"),
    ("replay.engine.simulate", "observed_end", "engine: observed end state"),
    ("replay.engine.simulate", "run_configs", "engine: sweep (all replays)"),
    ("replay.engine.simulate", "measure_fidelity", "engine: fidelity"),
    ("replay.engine.simulate", "output_tables", "engine: output tables"),
    ("replay.engine.simulate", "write_sim", "engine: write sim/"),
    ("replay.report.side_process", "SideProcess.trace_figures",
     "report: wait for the trace figures"),
    ("replay.report.collect", "collect", "report: figures (DuckDB)"),
    ("replay.report.side_process", "Side.plots", "report: plots"),
    ("replay.report.side_process", "SideProcess.plots", "report: plots"),
    ("replay.report.html", "render_html", "report: html"),
    ("replay.report.markdown", "render_markdown", "report: markdown"),
)


def _timed(fn, phase: str, results: list):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
        finally:
            PHASES[phase] += time.perf_counter() - t
        if fn.__name__ == "run_configs":
            results.extend(out)
        return out
    return wrapper


def main() -> None:
    import importlib

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--snapshots", type=Path)
    ap.add_argument("--max-order", default="3..10")
    args = ap.parse_args()
    results: list = []
    for mod, name, phase in TIMED:
        owner = importlib.import_module(mod)
        *path, attr = name.split(".")
        for part in path:  # a method: "Class.method"
            owner = getattr(owner, part)
        setattr(owner, attr, _timed(getattr(owner, attr), phase, results))
    from replay.report.make import make_report
    from replay.report.options import report_options

    opts = report_options(args.max_order, "linear,coalesced,bitmap", "free,reclaim,migrate",
                          "migrate", 0.99, str(args.snapshots) if args.snapshots else None,
                          False)
    t0 = time.perf_counter()
    make_report(args.trace, args.output, opts, quiet=True)
    total = time.perf_counter() - t0
    print(f"phases of replay report ({total:.2f} s wall in one process):")
    for phase in dict.fromkeys(phase for _, _, phase in TIMED):
        if phase in PHASES:
            print(f"  {phase:34s} {PHASES[phase]:8.2f} s  {100 * PHASES[phase] / total:5.1f} %")
    rest = total - sum(PHASES.values())
    print(f"  {'other (imports, checks, writes)':34s} {rest:8.2f} s  {100 * rest / total:5.1f} %")
    per_replay: dict[tuple, float] = defaultdict(float)
    for r in results:
        # a group's time is split evenly over its searches: their sum is the replay's
        if getattr(r, "shared_from", None) is None:
            mode, n, _, policy = r.config
            per_replay[mode, n, policy] += r.elapsed
    shared = sum(getattr(r, "shared_from", None) is not None for r in results)
    for mode in sorted({k[0] for k in per_replay}):
        mine = [v for k, v in per_replay.items() if k[0] == mode]
        print(f"  replays, {mode:9s} (sum over workers) {sum(mine):8.2f} s ({len(mine)} replays)")
    for (mode, n, policy), secs in sorted(per_replay.items(), key=lambda kv: -kv[1])[:SLOWEST]:
        print(f"  slow replay: {mode} max order {n} {policy:8s} {secs:8.2f} s")
    print(f"  configurations sharing another's replay: {shared} of {len(results)}")


if __name__ == "__main__":
    main()
