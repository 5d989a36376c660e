"""Benchmark: `replay ingest` of a big perf.data (-g) against `perf script` on the same file.

Usage: python tests/bench/bench_perfdata.py [PERF_DATA] [--runs N]

Both run as whole processes under /usr/bin/time -v, after one untimed warm-up each (page
cache, numba's on-disk cache); the best of N runs is kept for wall time, with the CPU time
(user + sys) and peak RSS of that run. The target is replay >= 5x faster than perf script
(goal 10x). The default input is /work/captures/big-perf.data (376,624 samples with
callchains, 80 MB; see sample_traces/README.md for how it was captured).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from timing import best

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = Path("/work/captures/big-perf.data")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("perf_data", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not args.perf_data.is_file():
        sys.exit(f"{args.perf_data}: no such file (capture one, see sample_traces/README.md)")
    if shutil.which("perf") is None:
        sys.exit("perf is not installed: nothing to compare with")
    with tempfile.TemporaryDirectory(prefix="bench-perfdata-") as tmp:
        out = Path(tmp) / "ds"
        ours = [sys.executable, "-m", "replay", "ingest", str(args.perf_data), "-o", str(out),
                "--force", "-q"]
        perf = ["perf", "script", "-i", str(args.perf_data)]
        r_wall, r_cpu, r_rss = best(ours, args.runs)
        p_wall, p_cpu, p_rss = best(perf, args.runs)
        meta = (out / "meta.json").read_text()
        events = int(re.search(r'"events": (\d+)', meta).group(1))
        frames = int(re.search(r'"stack_frames": (\d+)', meta).group(1))
    print(f"input: {args.perf_data} ({args.perf_data.stat().st_size / 1e6:.1f} MB, "
          f"{events} samples, {frames} distinct-stack frames); best of {args.runs} runs")
    print(f"{'':28}{'wall s':>9}{'cpu s':>9}{'peak RSS MiB':>14}")
    print(f"{'replay ingest':28}{r_wall:9.2f}{r_cpu:9.2f}{r_rss / 1024:14.0f}")
    print(f"{'perf script > /dev/null':28}{p_wall:9.2f}{p_cpu:9.2f}{p_rss / 1024:14.0f}")
    print(f"speed-up (perf script / replay): wall {p_wall / r_wall:.1f}x, "
          f"cpu {p_cpu / r_cpu:.1f}x (target >= 5x, goal 10x)")


if __name__ == "__main__":
    main()
