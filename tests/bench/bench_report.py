"""Benchmark: `replay report` end to end on big real traces vs `trace-cmd report`.

For each trace (by default the 3 M- and 6 M-event captures big3m.dat and big6m.dat), times
in the same run, each under /usr/bin/time -v, `trace-cmd report -i TRACE.dat` (its text to
/dev/null) and `replay report TRACE` (ingest of a trace never seen before: each run reads
the trace through a symlink in a new directory, so no dataset exists; then the default
sweep of max orders 3..10 over every search, policy and mode, figures, plots, three output
files), alternately for --pairs pairs; prints each run's wall and CPU seconds and peak
RSS, the medians and the median of the pairs' ratios (after one untimed report of a small
committed trace, so that the one-time compile of a fresh install is not counted). Then
runs the report once more in one process with each phase timed (report_phases.py: ingest,
the engine's phases, each mode's replays and the slowest ones, the report's figures, plots
and renderers). Ends
with a table, one row per trace: events, the medians of both commands and the ratios. One
line per run or phase, so the output can be piped; the load average is printed per trace,
since other work on the machine lengthens the wall times.

    python tests/bench/bench_report.py [--trace PATH ...] [--dat PATH ...]
        [--snapshots DIR ...] [--max-order 3..10] [--pairs 1] [--workdir DIR] [--keep]

Defaults: $REPLAY_CAPTURES/big3m.dat and big6m.dat (default ~/replay-captures), as
recorded by `sample_traces/capture_big.sh 3000000 60 big3m` and `... 6000000 120 big6m`
(a missing default is skipped with that command); --dat (what trace-cmd reads) defaults
to the trace itself or NAME.dat beside it, --snapshots to NAME.snapshots beside it if
present. Repeated --dat / --snapshots pair with the --trace options in order.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from timing import CAPTURES, ROOT, WARM_UP, CommandFailed, Timing, timed, warm_up

#: the default traces: (name, events, time limit) for sample_traces/capture_big.sh
CAPTURED = (("big3m", 3_000_000, 60), ("big6m", 6_000_000, 120))


@dataclass
class Bench:
    """One trace's inputs and, once benchmarked, its runs' medians (None if a run failed)."""

    trace: Path
    dat: Path
    snapshots: Path | None
    events: int | None = None
    ours: Timing | None = None
    theirs: Timing | None = None
    failure: str | None = None


def _line(what: str, t: Timing) -> str:
    return (f"{what:34s} {t.wall:8.2f} s wall  {t.cpu:8.2f} s CPU  "
            f"peak RSS {t.rss_kib / 1024:6.0f} MiB")


def _name(trace: Path) -> str:
    """NAME of a capture NAME.dat / NAME.trace.txt[.xz]."""
    return trace.name.split(".")[0]


def _median(runs: list[Timing]) -> Timing:
    med = statistics.median
    return Timing(med(t.wall for t in runs), med(t.cpu for t in runs),
                  int(med(t.rss_kib for t in runs)))


def _benches(args: argparse.Namespace) -> list[Bench]:
    """The traces to run: the given ones (all must exist) or the captured defaults present."""
    if args.trace:
        traces = args.trace
        for opt in ("dat", "snapshots"):
            if getattr(args, opt) and len(getattr(args, opt)) != len(traces):
                sys.exit(f"--{opt} given {len(getattr(args, opt))} times for {len(traces)} --trace")
    else:
        traces = []
        for name, events, seconds in CAPTURED:
            path = CAPTURES / f"{name}.dat"
            if path.is_file():
                traces.append(path)
            else:
                print(f"{path}: no such file, skipped (record it as root with "
                      f"sample_traces/capture_big.sh {events} {seconds} {name})", flush=True)
        if not traces:
            sys.exit(f"no trace to benchmark in {CAPTURES} (set REPLAY_CAPTURES or pass --trace)")
    out = []
    for i, trace in enumerate(traces):
        dat = args.dat[i] if args.dat else (
            trace if trace.suffix == ".dat" else trace.with_name(_name(trace) + ".dat"))
        snaps = (args.snapshots[i] if args.snapshots
                 else trace.with_name(_name(trace) + ".snapshots"))
        for p in (trace, dat):
            if not p.is_file():
                sys.exit(f"{p}: no such file (record one with sample_traces/capture_big.sh)")
        out.append(Bench(trace, dat, snaps if snaps.is_dir() else None))
    return out


def _run(b: Bench, args: argparse.Namespace, work: Path) -> None:
    """The paired runs and the per-phase breakdown of one trace, printed; fills `b`."""
    extra = ["--snapshots", str(b.snapshots)] if b.snapshots else []
    print(f"== {b.trace} ({b.trace.stat().st_size / 1e6:.0f} MB); trace-cmd reads "
          f"{b.dat.name}; snapshots: {b.snapshots or 'none'}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    ratios, ours, theirs = [], [], []
    for k in range(args.pairs):
        run = work / f"{_name(b.trace)}-run{k}"
        run.mkdir()
        link = run / b.trace.name
        link.symlink_to(b.trace.resolve())
        t = timed(["trace-cmd", "report", "-i", str(b.dat)])
        print(_line(f"trace-cmd report ({k + 1})", t), flush=True)
        try:
            r = timed([sys.executable, "-m", "replay", "report", str(link), "-o",
                       str(run / "report.html"), "--max-order", args.max_order, "-q", *extra])
        except CommandFailed as e:
            print(_line(f"replay report ({k + 1}) FAILED", e.timing), flush=True)
            lines = [x.strip() for x in e.stderr.splitlines() if x.strip()]
            b.failure = " / ".join(lines[-2:])
            for x in lines[-5:]:
                print(f"  {x}", flush=True)
            return
        print(_line(f"replay report ({k + 1})", r), flush=True)
        theirs.append(t)
        ours.append(r)
        ratios.append(r.wall / t.wall)
        if k == 0:
            meta = run / f"{b.trace.name}.replay" / "meta.json"
            b.events = json.loads(meta.read_text())["events"]
            rep = json.loads((run / "report.json").read_text())
            print(f"{b.events:,} events, {len(rep['configs'])} configurations, recommended "
                  f"max order {rep['recommendation']['max_order']}", flush=True)
        if not args.keep:
            shutil.rmtree(run)
    b.ours, b.theirs = _median(ours), _median(theirs)
    print(f"median wall: replay report {b.ours.wall:.2f} s, trace-cmd report "
          f"{b.theirs.wall:.2f} s; median ratio replay/trace-cmd {statistics.median(ratios):.2f} "
          f"(wall) over {args.pairs} pair(s); CPU ratio {b.ours.cpu / b.theirs.cpu:.2f}",
          flush=True)
    prof = work / f"{_name(b.trace)}-profiled"
    prof.mkdir()
    (prof / b.trace.name).symlink_to(b.trace.resolve())
    res = subprocess.run([sys.executable, str(Path(__file__).with_name("report_phases.py")),
                          str(prof / b.trace.name), str(prof / "report.html"),
                          "--max-order", args.max_order, *extra], cwd=ROOT)
    if res.returncode != 0:
        print(f"report_phases.py failed on {b.trace} (exit status {res.returncode})", flush=True)
    if not args.keep:
        shutil.rmtree(prof)


def _summary(benches: list[Bench]) -> None:
    """The table of all traces: one row each."""
    w = max(len("trace"), *(len(_name(b.trace)) for b in benches))
    print(f"summary (medians; load average {os.getloadavg()[0]:.1f} now):")
    print(f"{'trace':{w}s} {'events':>10s} {'replay wall':>11s} {'CPU':>8s} {'RSS MiB':>8s} "
          f"{'trace-cmd wall':>14s} {'CPU':>8s} {'wall ratio':>10s} {'CPU ratio':>9s}")
    for b in benches:
        if b.ours is None or b.theirs is None:
            print(f"{_name(b.trace):{w}s} replay report failed: {b.failure}")
            continue
        print(f"{_name(b.trace):{w}s} {b.events:>10,} {b.ours.wall:>11.2f} {b.ours.cpu:>8.2f} "
              f"{b.ours.rss_kib / 1024:>8.0f} {b.theirs.wall:>14.2f} {b.theirs.cpu:>8.2f} "
              f"{b.ours.wall / b.theirs.wall:>10.2f} {b.ours.cpu / b.theirs.cpu:>9.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, action="append",
                    help="a trace (repeatable; default: big3m.dat and big6m.dat in "
                         "$REPLAY_CAPTURES)")
    ap.add_argument("--dat", type=Path, action="append",
                    help="trace.dat of the same capture for trace-cmd (one per --trace)")
    ap.add_argument("--snapshots", type=Path, action="append",
                    help="/proc snapshots (one per --trace; default: NAME.snapshots beside it)")
    ap.add_argument("--max-order", default="3..10")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the datasets and reports")
    args = ap.parse_args()
    if shutil.which("trace-cmd") is None:
        sys.exit("trace-cmd is not installed (apt-get install -y trace-cmd)")
    benches = _benches(args)
    work = Path(tempfile.mkdtemp(prefix="bench-report-", dir=args.workdir))
    try:
        print(_line(f"warm-up: replay report {WARM_UP.name}", warm_up(work)), flush=True)
        for b in benches:
            _run(b, args, work)
        _summary(benches)
        if args.keep:
            print(f"kept {work}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
