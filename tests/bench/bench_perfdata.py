"""Benchmark: `replay ingest` of a big perf.data (-g) against `perf script` on the same file.

Usage: python tests/bench/bench_perfdata.py [PERF_DATA ...] [--runs N]

Both run as whole processes under /usr/bin/time -v, after one untimed warm-up each (page
cache, the compiled kernels); the best of N runs is kept for wall time, with the CPU time
(user + sys) and peak RSS of that run. The target is replay >= 5x faster than perf script
(goal 10x). The default inputs are $REPLAY_CAPTURES/big-perf.data (376,624 samples with
callchains, 84 MB) and perfdata-1m.perf.data (1,315,158 samples, 285 MB); see
sample_traces/README.md for how they were captured. Our fixed start-up (~0.45 s of Python,
numpy and pyarrow imports) weighs more in the smaller one.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from timing import CAPTURES, best

DEFAULT = [CAPTURES / "big-perf.data", CAPTURES / "perfdata-1m.perf.data"]


def bench(perf_data: Path, runs: int, tmp: Path) -> None:
    out = tmp / (perf_data.name + ".replay")
    ours = [sys.executable, "-m", "replay", "ingest", str(perf_data), "-o", str(out),
            "--force", "-q"]
    r_wall, r_cpu, r_rss = best(ours, runs)
    p_wall, p_cpu, p_rss = best(["perf", "script", "-i", str(perf_data)], runs)
    meta = (out / "meta.json").read_text()
    events = int(re.search(r'"events": (\d+)', meta).group(1))
    frames = int(re.search(r'"stack_frames": (\d+)', meta).group(1))
    print(f"input: {perf_data} ({perf_data.stat().st_size / 1e6:.1f} MB, "
          f"{events} samples, {frames} distinct-stack frames); best of {runs} runs")
    print(f"{'':28}{'wall s':>9}{'cpu s':>9}{'peak RSS MiB':>14}")
    print(f"{'replay ingest':28}{r_wall:9.2f}{r_cpu:9.2f}{r_rss / 1024:14.0f}")
    print(f"{'perf script > /dev/null':28}{p_wall:9.2f}{p_cpu:9.2f}{p_rss / 1024:14.0f}")
    print(f"speed-up (perf script / replay): wall {p_wall / r_wall:.1f}x, "
          f"cpu {p_cpu / r_cpu:.1f}x (target >= 5x, goal 10x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("perf_data", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    missing = [p for p in args.perf_data if not p.is_file()]
    if missing:
        sys.exit(f"{', '.join(map(str, missing))}: no such file (capture one, see "
                 "sample_traces/README.md)")
    if shutil.which("perf") is None:
        sys.exit("perf is not installed: nothing to compare with")
    with tempfile.TemporaryDirectory(prefix="bench-perfdata-") as tmp:
        for perf_data in args.perf_data:
            bench(perf_data, args.runs, Path(tmp))


if __name__ == "__main__":
    main()
