"""Benchmark: the replay engine on a big real trace, against `trace-cmd report` on it.

Usage: python tests/bench/bench_engine.py [--dataset DIR] [--trace TRACE] [--dat DAT]

Prints the events/s of one observed-mode and one simulated-mode replay (in process, after a
warm-up that loads numba's on-disk cache), then times the whole default sweep
(`replay simulate DATASET`, 6 max orders x 3 searches x 3 policies x 2 modes + the
baseline, all cores) and `trace-cmd report` of the same trace as whole processes under
/usr/bin/time -v, with their CPU time and peak RSS, and the ratio. Goal: the sweep takes
less time than trace-cmd report. Defaults: /work/captures/big.trace.txt (6,423,914 events,
ingested into a temporary dataset unless --dataset names one) and big.dat, the trace.dat
trace-cmd extracted from the same ring buffer (see sample_traces/README.md).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import ROOT, timed

sys.path.insert(0, str(ROOT))
CAPTURES = Path("/work/captures")


def replay_rates(dataset: Path, snapshots: Path | None) -> None:
    """events/s of one observed and one simulated replay (N = 5), in this process."""
    from replay.engine.simulate import SimOptions, prepare, run_in_process

    t = time.perf_counter()
    opts = SimOptions(snapshots=str(snapshots) if snapshots else None, jobs=1)
    ctx = prepare(dataset, opts)
    print(f"load + initial state: {time.perf_counter() - t:.2f} s "
          f"({ctx.stream.events} events, {len(ctx.stream.kind)} allocations and frees)")
    for cfg in (("observed", 5, "linear", "free"), ("simulated", 5, "linear", "free")):
        run_in_process(ctx, [cfg])  # warm-up: numba cache, page cache
        t = time.perf_counter()
        run_in_process(ctx, [cfg])
        dt = time.perf_counter() - t
        print(f"{cfg[0]:9s} N=5 linear/free: {dt:.2f} s, "
              f"{ctx.stream.events / dt / 1e6:.2f} M events/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, help="an already ingested dataset of --trace")
    ap.add_argument("--trace", type=Path, default=CAPTURES / "big.trace.txt")
    ap.add_argument("--dat", type=Path, default=CAPTURES / "big.dat")
    ap.add_argument("--snapshots", type=Path, default=CAPTURES / "big.snapshots")
    args = ap.parse_args()
    if shutil.which("trace-cmd") is None:
        sys.exit("trace-cmd is not installed: nothing to compare with")
    if not args.dat.is_file():
        sys.exit(f"{args.dat}: no such file (capture one, see sample_traces/README.md)")
    snapshots = args.snapshots if args.snapshots.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        dataset = args.dataset
        if dataset is None:
            dataset = Path(tmp) / "big.replay"
            print(f"ingesting {args.trace} ...")
            subprocess.run([sys.executable, "-m", "replay", "ingest", str(args.trace), "-o",
                            str(dataset), "-q"], check=True, cwd=ROOT)
        replay_rates(dataset, snapshots)
        sweep = [sys.executable, "-m", "replay", "simulate", str(dataset), "-q"]
        if snapshots:
            sweep += ["--snapshots", str(snapshots)]
        ours = timed(sweep)
        theirs = timed(["trace-cmd", "report", "-i", str(args.dat)])
    print(f"default sweep (replay simulate): {ours[0]:.1f} s wall, {ours[1]:.1f} s CPU, "
          f"{ours[2] / 1024:.0f} MiB peak RSS")
    print(f"trace-cmd report:                {theirs[0]:.1f} s wall, {theirs[1]:.1f} s CPU, "
          f"{theirs[2] / 1024:.0f} MiB peak RSS")
    print(f"ratio trace-cmd report / sweep: {theirs[0] / ours[0]:.2f}x wall "
          f"({'goal met' if ours[0] < theirs[0] else 'goal missed'})")


if __name__ == "__main__":
    main()
