"""Benchmark: `replay report` end to end on a big real trace vs `trace-cmd report`.

Times, in the same run and each under /usr/bin/time -v, `replay report TRACE` (ingest,
the engine's default sweep of max orders 3..10 over every search and policy, figures,
plots, three output files) and `trace-cmd report` of the same capture's trace.dat (its
text to /dev/null). Prints both wall times, peak RSS and the ratio. The trace is read
through a symlink in a temporary directory, so the dataset and the report are written
there and deleted afterwards.

    python tests/bench/bench_report.py [--trace /work/captures/big.dat]
        [--dat /work/captures/big.dat] [--max-order 3..10] [--workdir DIR] [--keep]

The default trace is big.dat when a trace.dat reader is registered, else the big ftrace
text capture of the same session (big.trace.txt), which the output then says.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from timing import ROOT, timed

sys.path.insert(0, str(ROOT))

from ingest import READERS  # noqa: E402

CAPTURES = Path("/work/captures")


def main() -> None:
    has_dat = "trace.dat" in READERS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=CAPTURES / ("big.dat" if has_dat
                                                               else "big.trace.txt"))
    ap.add_argument("--dat", type=Path, default=CAPTURES / "big.dat",
                    help="trace.dat for trace-cmd report (the same capture)")
    ap.add_argument("--max-order", default="3..10")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the dataset and report")
    args = ap.parse_args()
    if shutil.which("trace-cmd") is None:
        sys.exit("trace-cmd is not installed")
    for p in (args.trace, args.dat):
        if not p.is_file():
            sys.exit(f"{p}: no such file")
    work = Path(tempfile.mkdtemp(prefix="bench-report-", dir=args.workdir))
    try:
        link = work / args.trace.name
        link.symlink_to(args.trace.resolve())
        html = work / "report.html"
        print(f"trace: {args.trace} ({args.trace.stat().st_size / 1e6:.0f} MB)"
              + ("" if has_dat or args.trace.suffix == ".dat" else
                 " — text: no trace.dat reader is registered on this branch"))
        tc_wall, tc_cpu, tc_rss = timed(["trace-cmd", "report", "-i", str(args.dat)])
        print(f"trace-cmd report -i {args.dat.name}: {tc_wall:8.2f} s wall  {tc_cpu:8.2f} s "
              f"CPU  peak RSS {tc_rss / 1024:7.0f} MiB", flush=True)
        rp_wall, rp_cpu, rp_rss = timed([sys.executable, "-m", "replay", "report", str(link),
                                          "-o", str(html), "--max-order", args.max_order,
                                          "-q"])
        meta = json.loads((Path(f"{link}.replay") / "meta.json").read_text())
        rep = json.loads(html.with_suffix(".json").read_text())
        print(f"replay report {link.name}: {rp_wall:8.2f} s wall  {rp_cpu:8.2f} s CPU  peak RSS "
              f"{rp_rss / 1024:7.0f} MiB  ({meta['events']:,} events, {len(rep['configs'])} "
              f"configurations, recommended max order "
              f"{rep['recommendation']['max_order']})")
        print(f"ratio replay report / trace-cmd report: {rp_wall / tc_wall:.2f} (wall), "
              f"{rp_cpu / tc_cpu:.2f} (CPU)")
        if args.keep:
            print(f"kept {work}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
