"""Benchmark: `replay report` end to end on a big real trace vs `trace-cmd report`.

Times, in the same run and each under /usr/bin/time -v, `trace-cmd report -i TRACE.dat`
(its text to /dev/null) and `replay report TRACE` (ingest of a trace never seen before,
the default sweep of max orders 3..10 over every search, policy and mode, figures, plots,
three output files), alternately for --pairs pairs; prints each pair's wall and CPU seconds
and peak RSS, the medians and the median of the pairs' ratios. Then runs the report once
more in one process with each phase timed (report_phases.py): ingest, the engine's
phases, each mode's replays, the report's figures, plots and renderers. The trace is read
through a symlink in a temporary directory, so the dataset and the report are written
there and deleted afterwards.

    python tests/bench/bench_report.py [--trace PATH] [--dat PATH] [--snapshots DIR]
        [--max-order 3..10] [--pairs 1] [--workdir DIR] [--keep]

Defaults: what sample_traces/capture_big.sh writes, $REPLAY_CAPTURES/big.dat (default
~/replay-captures) and big.snapshots beside it; --dat defaults to --trace when that is a
trace.dat.
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
from pathlib import Path

from timing import CAPTURES, ROOT, Timing, timed



def _line(what: str, t: Timing) -> str:
    return f"{what:28s} {t.wall:8.2f} s wall  {t.cpu:8.2f} s CPU  peak RSS {t.rss_kib / 1024:6.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=CAPTURES / "big.dat")
    ap.add_argument("--dat", type=Path, help="trace.dat of the same capture for trace-cmd")
    ap.add_argument("--snapshots", type=Path, help="/proc snapshots (default: "
                    "TRACE's NAME.snapshots beside it, if any)")
    ap.add_argument("--max-order", default="3..10")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the datasets and reports")
    args = ap.parse_args()
    dat = args.dat or args.trace
    snaps = args.snapshots or args.trace.with_name(args.trace.name.split(".")[0] + ".snapshots")
    if shutil.which("trace-cmd") is None:
        sys.exit("trace-cmd is not installed (apt-get install -y trace-cmd)")
    for p in (args.trace, dat):
        if not p.is_file():
            sys.exit(f"{p}: no such file (record one with sample_traces/capture_big.sh)")
    extra = ["--snapshots", str(snaps)] if snaps.is_dir() else []
    work = Path(tempfile.mkdtemp(prefix="bench-report-", dir=args.workdir))
    try:
        print(f"trace: {args.trace} ({args.trace.stat().st_size / 1e6:.0f} MB); trace-cmd "
              f"reads {dat.name}; snapshots: {snaps if extra else 'none'}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        ratios, ours, theirs = [], [], []
        for k in range(args.pairs):
            run = work / f"run{k}"
            run.mkdir()
            link = run / args.trace.name
            link.symlink_to(args.trace.resolve())
            t = timed(["trace-cmd", "report", "-i", str(dat)])
            print(_line(f"trace-cmd report ({k + 1})", t), flush=True)
            r = timed([sys.executable, "-m", "replay", "report", str(link), "-o",
                       str(run / "report.html"), "--max-order", args.max_order, "-q", *extra])
            print(_line(f"replay report ({k + 1})", r), flush=True)
            theirs.append(t)
            ours.append(r)
            ratios.append(r.wall / t.wall)
        meta = json.loads((work / "run0" / f"{args.trace.name}.replay" / "meta.json").read_text())
        rep = json.loads((work / "run0" / "report.json").read_text())
        print(f"{meta['events']:,} events, {len(rep['configs'])} configurations, recommended "
              f"max order {rep['recommendation']['max_order']}")
        med = statistics.median
        print(f"median wall: replay report {med(x.wall for x in ours):.2f} s, trace-cmd report "
              f"{med(x.wall for x in theirs):.2f} s; median ratio replay/trace-cmd "
              f"{med(ratios):.2f} (wall) over {args.pairs} pair(s); CPU ratio "
              f"{med(x.cpu for x in ours) / med(x.cpu for x in theirs):.2f}", flush=True)
        prof = work / "profiled"
        prof.mkdir()
        (prof / args.trace.name).symlink_to(args.trace.resolve())
        subprocess.run([sys.executable, str(Path(__file__).with_name("report_phases.py")),
                        str(prof / args.trace.name), str(prof / "report.html"),
                        "--max-order", args.max_order, *extra], check=True, cwd=ROOT)
        if args.keep:
            print(f"kept {work}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
