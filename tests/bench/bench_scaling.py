"""Benchmark: is `replay report`'s cost linear in events? The same trace played 1, 2 and
4 times (`timing.repeated`), each reported from scratch (ingest, the default sweep,
figures, plots) as a whole process under /usr/bin/time -v, against `trace-cmd report`'s
cost on the single trace.

Usage: python tests/bench/bench_scaling.py [--trace TEXT] [--dat DAT] [--snapshots DIR]
    [--copies 1,2,4] [--workdir DIR]

Prints per copy count the events, wall and CPU seconds, peak RSS, CPU seconds per million
events and its ratio to the single trace's (1.00 everywhere = linear), and the CPU ratio
to `trace-cmd report` of the single trace, after an untimed report of a small committed
trace (the one-time compile). Defaults: `$REPLAY_CAPTURES/big.trace.txt`, the
text of `big.dat` that `sample_traces/capture_big.sh` records, and `big.snapshots`. The
copies replay as one trace, so each allocation of a page the previous copy left
allocated is an inconsistency (counted and skipped): a load of k times the events, not
evidence about the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from timing import CAPTURES, ROOT, WARM_UP, repeated, timed, timed_output, warm_up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=CAPTURES / "big.trace.txt")
    ap.add_argument("--dat", type=Path, default=CAPTURES / "big.dat")
    ap.add_argument("--snapshots", type=Path, default=CAPTURES / "big.snapshots")
    ap.add_argument("--copies", default="1,2,4")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    from replay.dataset import default_output

    for p in (args.trace, args.dat):
        if not p.is_file():
            sys.exit(f"{p}: no such file (record one with sample_traces/capture_big.sh)")
    replay = str(Path(sys.executable).with_name("replay"))
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-", dir=args.workdir))
    try:
        t = warm_up(work)
        print(f"warm-up (untimed compile, if any): replay report {WARM_UP.name} {t.wall:.2f} s",
              flush=True)
        anchor = timed(["trace-cmd", "report", "-i", str(args.dat)])
        print(f"trace-cmd report {args.dat.name}: {anchor.wall:.2f} s wall, "
              f"{anchor.cpu:.2f} s CPU, peak RSS {anchor.rss_kib / 1024:.0f} MiB", flush=True)
        print(f"{'copies':>6} {'events':>11} {'wall s':>8} {'CPU s':>8} {'RSS MiB':>8} "
              f"{'CPU s/M ev':>10} {'vs 1x':>6} {'CPU vs trace-cmd':>16}", flush=True)
        first = None
        for k in (int(x) for x in args.copies.split(",")):
            trace = repeated(args.trace, k, work / f"x{k}.trace.txt")
            out = work / f"x{k}-report"
            t, _ = timed_output([replay, "report", str(trace), "-q", "--snapshots",
                                 str(args.snapshots), "-o", str(out)])
            dataset = default_output(trace)
            events = json.loads((dataset / "meta.json").read_text())["events"]
            per = t.cpu / events * 1e6
            first = first or per
            print(f"{k:>6} {events:>11,} {t.wall:>8.2f} {t.cpu:>8.2f} {t.rss_kib / 1024:>8.0f} "
                  f"{per:>10.2f} {per / first:>6.2f} {t.cpu / (anchor.cpu * k):>16.2f}",
                  flush=True)
            trace.unlink()
            shutil.rmtree(dataset, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
