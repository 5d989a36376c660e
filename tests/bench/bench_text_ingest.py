"""Benchmark: `replay ingest` of a big real text trace against `trace-cmd report` of its trace.dat.

    python tests/bench/bench_text_ingest.py [TRACE] [--dat DAT] [--no-10x]

Defaults: $REPLAY_CAPTURES/big.trace.txt (the kernel's `trace` text of a real capture,
>= 1M lines) and big.dat (`trace-cmd extract` of the same ring buffer). In one run:

1. `replay ingest TRACE` → lines/s (all lines of the file) and events/s;
2. `trace-cmd report -i DAT > /dev/null` → events/s (the events are the same ring
   buffer's, as compare_big_text.py checks: the dataset's count is used);
3. the ratio of the two rates, by wall-clock time and by CPU time (user + sys: the
   machine may be shared, CPU time is the steadier figure);
4. peak RSS of both (`/usr/bin/time`), and of `replay ingest` on a 10x input: TRACE
   repeated 10 times, zstd-compressed into CAPTURES/big10.trace.txt.zst (made once).

Target: replay's line rate >= 2x trace-cmd report's event rate; peak RSS < 512 MiB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import CAPTURES, Timing, timed

RSS_LIMIT_KIB = 512 * 1024


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(16 << 20):
            n += chunk.count(b"\n")
    return n


def ingest(trace: Path, out: Path) -> Timing:
    return timed([sys.executable, "-m", "replay", "ingest", str(trace), "-o", str(out), "-q",
                  "--force"])


def ten_times(trace: Path) -> Path:
    """TRACE repeated 10 times, zstd-compressed (made once, kept in CAPTURES)."""
    out = CAPTURES / (trace.name + ".10x.zst")
    if not out.exists():
        part = out.with_name(out.name + ".part")
        with open(part, "wb") as f:
            zstd = subprocess.Popen(["zstd", "-q", "-1", "-T2", "-c"], stdin=subprocess.PIPE,
                                    stdout=f)
            for _ in range(10):
                with open(trace, "rb") as src:
                    shutil.copyfileobj(src, zstd.stdin, 16 << 20)
            zstd.stdin.close()
            if zstd.wait():
                raise SystemExit("zstd failed")
        part.rename(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", nargs="?", type=Path, default=CAPTURES / "big.trace.txt")
    ap.add_argument("--dat", type=Path, help="companion trace.dat (default: TRACE's .dat)")
    ap.add_argument("--no-10x", action="store_true", help="skip the 10x memory run")
    args = ap.parse_args()
    dat = args.dat or args.trace.with_name(args.trace.name.replace(".trace.txt", ".dat"))
    lines = count_lines(args.trace)
    print(f"input: {args.trace} ({args.trace.stat().st_size / 2**20:,.0f} MiB, {lines:,} lines)")
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-text-", dir=CAPTURES) as tmp:
        out = Path(tmp) / "big.replay"
        ours = ingest(args.trace, out)
        events = json.loads((out / "meta.json").read_text())["events"]
        theirs = timed(["trace-cmd", "report", "-i", str(dat)])
        print(f"replay ingest      {ours.wall:8.2f} s wall {ours.cpu:8.2f} s CPU  "
              f"{lines / ours.wall:12,.0f} lines/s wall {lines / ours.cpu:12,.0f} "
              f"lines/s CPU  ({events:,} events)  peak RSS {ours.rss_kib / 1024:,.0f} MiB")
        print(f"trace-cmd report   {theirs.wall:8.2f} s wall {theirs.cpu:8.2f} s CPU  "
              f"{events / theirs.wall:12,.0f} events/s wall {events / theirs.cpu:9,.0f} "
              f"events/s CPU  peak RSS {theirs.rss_kib / 1024:,.0f} MiB")
        ratio_wall = (lines / ours.wall) / (events / theirs.wall)
        ratio_cpu = (lines / ours.cpu) / (events / theirs.cpu)
        print(f"ratio (replay lines/s / trace-cmd events/s): {ratio_wall:.2f}x wall, "
              f"{ratio_cpu:.2f}x CPU  (target >= 2x)")
        ok &= ours.rss_kib < RSS_LIMIT_KIB
        if not args.no_10x:
            big = ten_times(args.trace)
            ten = ingest(big, out)
            print(f"10x input {big.name} ({big.stat().st_size / 2**20:,.0f} MiB zstd, "
                  f"{10 * lines:,} lines): {ten.wall:.1f} s wall {ten.cpu:.1f} s CPU, "
                  f"{10 * lines / ten.wall:,.0f} lines/s, peak RSS "
                  f"{ten.rss_kib / 1024:,.0f} MiB (limit {RSS_LIMIT_KIB // 1024} MiB)")
            ok &= ten.rss_kib < RSS_LIMIT_KIB
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
