"""Benchmark: the replay engine on a big real trace, against `trace-cmd report` on it.

Usage: python tests/bench/bench_engine.py [--dataset DIR] [--trace TRACE] [--dat DAT]
    [--snapshots DIR]

Prints the events/s of single replays (observed and simulated, N = 5 and 9, the baseline;
medians of three, in process, after an untimed report of a small committed trace in
another process, which compiles the engine if the sources changed, and a warm-up that
loads numba's on-disk cache; an observed one also without the fragmentation series, which one observed replay
per sweep samples), then times the whole default sweep (`replay simulate DATASET`: 6 max
orders x 3 searches x 3 policies x 2 modes + the baseline, all cores, replays shared
where configurations cannot differ) and `trace-cmd report` of the same trace as whole
processes under /usr/bin/time -v, with their CPU time and peak RSS, and the ratio. Defaults: what sample_traces/capture_big.sh
writes under $REPLAY_CAPTURES (default ~/replay-captures): big.dat, ingested into a
temporary dataset unless --dataset names one, and big.snapshots.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import CAPTURES, ROOT, WARM_UP, timed, warm_up

sys.path.insert(0, str(ROOT))
#: How many times each single replay is timed (the median is printed, with the range): one
#: replay of this VM's fresh memory varies by a fifth from run to run.
TIMED = 3
#: The single replays timed: (mode, max order, search, policy).
RATES = (("observed", 5, "linear", "free"), ("observed", 9, "linear", "migrate"),
         ("simulated", 5, "linear", "free"), ("simulated", 5, "linear", "migrate"),
         ("simulated", 9, "linear", "migrate"), ("simulated", 10, "none", "none"))


def replay_rates(dataset: Path, snapshots: Path | None) -> None:
    """events/s of single replays, in this process."""
    from replay.engine.context import prepare
    from replay.engine.options import SimOptions
    from replay.engine.sweep import Group, replay_group, run_configs

    t = time.perf_counter()
    opts = SimOptions(snapshots=str(snapshots) if snapshots else None, jobs=1)
    ctx = prepare(dataset, opts)
    print(f"load + initial state: {time.perf_counter() - t:.2f} s "
          f"({ctx.stream.events:,} events, {len(ctx.stream.kind):,} stream entries)")
    for cfg in RATES:
        run_configs(ctx, [cfg], quiet=True)  # warm-up: numba cache, page cache
        times = []
        for _ in range(TIMED):
            t = time.perf_counter()
            (r,) = run_configs(ctx, [cfg], quiet=True)
            times.append(time.perf_counter() - t)
        dt = statistics.median(times)
        rates = sorted(ctx.stream.events / x / 1e6 for x in times)
        print(f"{cfg[0]:9s} N={cfg[1]:<2d} {cfg[2]}/{cfg[3]}: {dt:6.2f} s, "
              f"{ctx.stream.events / dt / 1e6:6.2f} M events/s (median of {TIMED}, "
              f"{rates[0]:.2f}-{rates[-1]:.2f}; {len(r.sel)} requests)")
        if cfg[0] == "observed":  # one observed replay per sweep samples the series
            group = Group(cfg[0], cfg[1], cfg[3], (cfg[2],), False)
            t = time.perf_counter()
            replay_group(ctx, group)
            dt = time.perf_counter() - t
            print(f"{'':9s} {'':4s} without the series: {dt:6.2f} s, "
                  f"{ctx.stream.events / dt / 1e6:6.2f} M events/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, help="an already ingested dataset of --trace")
    ap.add_argument("--trace", type=Path, default=CAPTURES / "big.dat")
    ap.add_argument("--dat", type=Path, help="trace.dat for trace-cmd (default: --trace)")
    ap.add_argument("--snapshots", type=Path, default=CAPTURES / "big.snapshots")
    args = ap.parse_args()
    dat = args.dat or args.trace
    if shutil.which("trace-cmd") is None:
        sys.exit("trace-cmd is not installed: nothing to compare with")
    if not dat.is_file():
        sys.exit(f"{dat}: no such file (record one with sample_traces/capture_big.sh)")
    snapshots = args.snapshots if args.snapshots.is_dir() else None
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        # compiled, if it must be, in another process: one that compiled holds numba's
        # garbage, which its collector walks again and again (gc_collect_main in a perf
        # profile; simulated N = 5 on big3m ran at 8.5 M events/s in such a process,
        # 10.5-11.2 in clean ones)
        print(f"warm-up (untimed compile, if any): replay report {WARM_UP.name} "
              f"{warm_up(Path(tmp)).wall:.2f} s", flush=True)
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
        theirs = timed(["trace-cmd", "report", "-i", str(dat)])
    print(f"default sweep (replay simulate): {ours[0]:.1f} s wall, {ours[1]:.1f} s CPU, "
          f"{ours[2] / 1024:.0f} MiB peak RSS")
    print(f"trace-cmd report:                {theirs[0]:.1f} s wall, {theirs[1]:.1f} s CPU, "
          f"{theirs[2] / 1024:.0f} MiB peak RSS")
    print(f"ratio sweep / trace-cmd report: {ours[0] / theirs[0]:.2f} wall "
          f"({'goal met' if ours[0] < theirs[0] else 'goal missed'})")


if __name__ == "__main__":
    main()
