"""Benchmark: `replay ingest` of big real trace.dat files vs `trace-cmd report` (the anchor).

Not collected by pytest (bench_*.py). Run from the repository root:

    python tests/bench/bench_tracedat.py [TRACE.dat ...] [--runs N]

Default inputs: $REPLAY_CAPTURES/big.dat (v7, zstd) and big.v6.dat, >= 2.5M kmem events each
(a system-wide capture of the sample_traces workload; see $REPLAY_CAPTURES/big.log). Each
tool runs as a whole process under /usr/bin/time in the same run, after an untimed warm-up
(page cache), the fastest of N runs kept; printed: wall and CPU seconds of both, their
ratios, our peak RSS. Exits 1 if the wall-time ratio is below 5
or the peak RSS above 512 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from timing import CAPTURES, ROOT, best, timed

DEFAULT = [CAPTURES / "big.dat", CAPTURES / "big.v6.dat"]
MIN_RATIO = 5.0
MAX_RSS_MIB = 512


def bench(trace: Path, tmp: Path, runs: int) -> bool:
    out = tmp / (trace.name + ".replay")
    o_wall, o_cpu, o_rss = best([sys.executable, "-m", "replay", "ingest", str(trace), "-o",
                                 str(out), "--force", "-q"], runs)
    a_wall, a_cpu, a_rss = best(["trace-cmd", "report", "-i", str(trace)], runs)
    meta = json.loads((out / "meta.json").read_text())
    wall_ratio, cpu_ratio = a_wall / o_wall, a_cpu / o_cpu
    print(f"{trace} (trace.dat v{meta['format_version']}, {meta['events']:,} events, "
          f"{trace.stat().st_size / 2**20:.0f} MiB); best of {runs}")
    print(f"  trace-cmd report -i FILE > /dev/null : {a_wall:7.2f} s wall "
          f"{a_cpu:7.2f} s CPU  {a_rss / 1024:6.0f} MiB")
    print(f"  replay ingest FILE                   : {o_wall:7.2f} s wall "
          f"{o_cpu:7.2f} s CPU  {o_rss / 1024:6.0f} MiB peak RSS")
    print(f"  ratio: {wall_ratio:.1f}x wall, {cpu_ratio:.1f}x CPU "
          f"(bar {MIN_RATIO:.0f}x, goal 10x); peak RSS bar {MAX_RSS_MIB} MiB")
    return wall_ratio >= MIN_RATIO and o_rss / 1024 <= MAX_RSS_MIB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--runs", type=int, default=1, help="timed runs of each (best kept)")
    args = ap.parse_args()
    traces = args.traces
    if shutil.which("trace-cmd") is None:
        sys.exit("trace-cmd is not installed: nothing to compare with")
    missing = [t for t in traces if not t.is_file()]
    if missing:
        sys.exit(f"missing input: {', '.join(map(str, missing))}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(other processes slow both tools; the CPU ratio is the steadier figure)")
    with tempfile.TemporaryDirectory(prefix="bench-tracedat-") as tmp:
        # build the compiled kernels first (once per installation) so that no run pays it
        timed([sys.executable, "-m", "replay", "ingest", str(ROOT / "sample_traces" /
               "ftrace-thp.dat"), "-o", str(Path(tmp) / "warm"), "--force", "-q"])
        ok = [bench(t, Path(tmp), args.runs) for t in traces]
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
