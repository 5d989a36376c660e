"""Benchmark: `replay ingest` of big real trace.dat files vs `trace-cmd report` (the anchor).

Not collected by pytest (bench_*.py). Run from the repository root:

    /work/venv/bin/python tests/bench/bench_tracedat.py [TRACE.dat ...]

Default inputs: /work/captures/big.dat (v7, zstd) and big.v6.dat, >= 2.5M kmem events each
(a system-wide capture of the sample_traces workload; see /work/captures/big.log). Each
tool runs as a whole process under /usr/bin/time in the same run; printed: wall and CPU
seconds of both, their ratios, our peak RSS. Exits 1 if the wall-time ratio is below 5
or the peak RSS above 512 MiB.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = [Path("/work/captures/big.dat"), Path("/work/captures/big.v6.dat")]
MIN_RATIO = 5.0
MAX_RSS_MIB = 512


def timed(cmd: list[str], stdout=subprocess.DEVNULL) -> dict[str, float]:  # noqa: ANN001
    """Wall and CPU seconds and peak RSS (MiB) of `cmd`, measured by /usr/bin/time."""
    r = subprocess.run(["/usr/bin/time", "-f", "TIME %e %U %S %M", *cmd], cwd=ROOT,
                       stdout=stdout, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    wall, user, sys_, rss = re.findall(r"TIME (\S+) (\S+) (\S+) (\d+)", r.stderr)[-1]
    return {"wall": float(wall), "cpu": float(user) + float(sys_), "rss": int(rss) / 1024}


def bench(trace: Path, tmp: Path) -> bool:
    out = tmp / (trace.name + ".replay")
    ours = timed([sys.executable, "-m", "replay", "ingest", str(trace), "-o", str(out),
                  "--force", "-q"])
    anchor = timed(["trace-cmd", "report", "-i", str(trace)])
    meta = json.loads((out / "meta.json").read_text())
    wall_ratio = anchor["wall"] / ours["wall"]
    cpu_ratio = anchor["cpu"] / ours["cpu"]
    print(f"{trace} (trace.dat v{meta['format_version']}, {meta['events']:,} events, "
          f"{trace.stat().st_size / 2**20:.0f} MiB)")
    print(f"  trace-cmd report -i FILE > /dev/null : {anchor['wall']:7.2f} s wall "
          f"{anchor['cpu']:7.2f} s CPU  {anchor['rss']:6.0f} MiB")
    print(f"  replay ingest FILE                   : {ours['wall']:7.2f} s wall "
          f"{ours['cpu']:7.2f} s CPU  {ours['rss']:6.0f} MiB peak RSS")
    print(f"  ratio: {wall_ratio:.1f}x wall, {cpu_ratio:.1f}x CPU "
          f"(bar {MIN_RATIO:.0f}x, goal 10x); peak RSS bar {MAX_RSS_MIB} MiB")
    return wall_ratio >= MIN_RATIO and ours["rss"] <= MAX_RSS_MIB


def main() -> None:
    traces = [Path(a) for a in sys.argv[1:]] or DEFAULT
    if shutil.which("trace-cmd") is None:
        sys.exit("trace-cmd is not installed: nothing to compare with")
    missing = [t for t in traces if not t.is_file()]
    if missing:
        sys.exit(f"missing input: {', '.join(map(str, missing))}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(other processes slow both tools; the CPU ratio is the steadier figure)")
    with tempfile.TemporaryDirectory(prefix="bench-tracedat-") as tmp:
        # warm numba's on-disk cache so that no run pays for compilation
        timed([sys.executable, "-m", "replay", "ingest", str(ROOT / "sample_traces" /
               "ftrace-thp.dat"), "-o", str(Path(tmp) / "warm"), "--force", "-q"])
        ok = [bench(t, Path(tmp)) for t in traces]
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
