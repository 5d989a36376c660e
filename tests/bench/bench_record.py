"""Benchmark: `replay record` against trace-cmd on the same capture (root, live tracefs).

Usage (wrap it in the machine's tracefs lock): python tests/bench/bench_record.py [--mib N]

A second tracing instance records the same kmem page events while `replay record` runs a
page-cache workload (write N MiB with dd, fsync, delete); then `trace-cmd extract -k -B`
and `trace-cmd report` turn that instance into text. Compared: what each needs after the
recording to give usable data (replay: decode + Parquet, `decode_seconds` in meta.json;
trace-cmd: extract + report), with events, CPU time and peak RSS (replay's includes
dd's, a few MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from replay.tracefs import find_tracefs  # noqa: E402
from tests.bench.timing import timed  # noqa: E402
from tests.tracefs_oracle import oracle_instance  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=1024, help="MiB written by the workload")
    args = ap.parse_args()
    if not shutil.which("trace-cmd"):
        sys.exit("trace-cmd is needed for the comparison")
    root, _ = find_tracefs(mount=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench-record-", dir="/var/tmp"))
    with oracle_instance(root, f"bench-record-{os.getpid()}", 131072) as oracle:
        work = (f"dd if=/dev/zero of={tmp}/data bs=1M count={args.mib} conv=fsync "
                f"status=none && rm {tmp}/data")
        out = tmp / "rec.replay"
        wall, cpu, rss = timed([sys.executable, "-m", "replay", "record", "-o", str(out), "-q",
                                "--", "sh", "-c", work])
        (oracle / "tracing_on").write_text("0")
        dat = tmp / "oracle.dat"
        x_wall, x_cpu, x_rss = timed(["trace-cmd", "extract", "-k", "-B", oracle.name, "-o",
                                      str(dat)])
        r_wall, r_cpu, r_rss = timed(["trace-cmd", "report", "-i", str(dat)])
    meta = json.loads((out / "meta.json").read_text())
    after = meta["recording"]["decode_seconds"]
    print(f"workload: dd {args.mib} MiB + fsync + rm; kernel {meta['kernel_release']}, "
          f"{meta['cpus']} CPUs")
    print(f"replay record: {meta['events']:,} events, {meta['lost_events']['total']} lost, "
          f"recording {meta['recording']['wall_seconds']:.2f} s, then {after:.2f} s to decode "
          f"and write the dataset (whole run {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss / 1024:.0f} MiB)")
    print(f"trace-cmd: extract {x_wall:.2f} s ({x_rss / 1024:.0f} MiB) + report {r_wall:.2f} s "
          f"({r_cpu:.2f} s CPU, {r_rss / 1024:.0f} MiB) = {x_wall + r_wall:.2f} s "
          f"({dat.stat().st_size / 2**20:.0f} MiB trace.dat)")
    print(f"ratio (trace-cmd extract+report / replay decode+write): "
          f"{(x_wall + r_wall) / after:.2f}x")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
