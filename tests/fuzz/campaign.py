"""A fuzzing campaign: N inputs per target, each target in its own process, and a table.

    python -m tests.fuzz.campaign [-n 100000] [--targets ftrace,perf-pipe] [--out DIR]

runs from the repository root. Each target runs `tests.fuzz.fuzz` with libFuzzer's
`-runs` (CHUNK at a time, resuming from the corpus) and a 60 s `-timeout` (a hang ends
the process; it is counted, its input kept as DIR/TARGET/timeout-*, and fuzzing resumes
with the runs left). The table gives, per
target: inputs run, crashes (tracebacks other than ReplayError, in
DIR/TARGET/crashes.txt), hangs, and the peak RSS of its fuzzing process; DIR/summary.json
holds the same. docs/fuzzing.md records the last campaign's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
#: the hang bound: an input that takes longer is a hang
HANG_SECONDS = 60
#: libFuzzer's own memory bound, above the 1 GiB the campaign judges, so a run that
#: grows is measured rather than cut short
RSS_LIMIT_MB = 4096
MAX_LEN = 1 << 16
#: inputs per fuzzing process: atheris's own bookkeeping grows by up to ~150 KB per input
#: on the slower targets (a plain loop over the same reader stays flat), so a process is
#: restarted from the corpus after this many, and peak RSS measures the reader, not that
CHUNK = 2000


@dataclass
class Result:
    target: str
    runs: int = 0
    crashes: int = 0
    hangs: int = 0
    peak_rss_mib: float = 0.0
    seconds: float = 0.0


def _runs(out: Path) -> int:
    try:
        return int((out / "runs").read_text().strip() or 0)
    except FileNotFoundError:
        return 0


def fuzz_target(name: str, n: int, out: Path, log) -> Result:  # noqa: ANN001
    """Run `n` inputs of target `name`, restarting after each hang."""
    res = Result(name)
    t0 = time.monotonic()
    while _runs(out) < n:
        cmd = [sys.executable, "-m", "tests.fuzz.fuzz", name, "--out", str(out),
               f"-runs={min(n - _runs(out), CHUNK)}", f"-timeout={HANG_SECONDS}",
               f"-rss_limit_mb={RSS_LIMIT_MB}", f"-max_len={MAX_LEN}",
               "-print_final_stats=1"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        res.peak_rss_mib = max(res.peak_rss_mib, usage.ru_maxrss / 1024)
        if proc.returncode == 0:
            continue
        hangs = len(list(out.glob("timeout-*")))
        if hangs > res.hangs:
            res.hangs = hangs
            continue
        # another libFuzzer stop (out of memory, a crash in native code): count it, skip
        # the input by moving on
        res.crashes += 1
        if res.crashes > 20:
            break
    res.runs = _runs(out)
    res.crashes += len(list(out.glob("crash-*")))
    res.seconds = round(time.monotonic() - t0, 1)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help="comma-separated targets (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="campaign directory (default: a new temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="replay-fuzz-campaign-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"campaign in {out}: {args.n} inputs per target", flush=True)
    print(f"{'target':<18} {'runs':>8} {'crashes':>8} {'hangs':>6} {'peak RSS':>10} "
          f"{'seconds':>8}", flush=True)
    results = []
    for name in args.targets.split(","):
        d = out / name
        d.mkdir(exist_ok=True)
        with open(d / "fuzz.log", "ab") as log:
            r = fuzz_target(name, args.n, d, log)
        results.append(r)
        print(f"{r.target:<18} {r.runs:>8} {r.crashes:>8} {r.hangs:>6} "
              f"{r.peak_rss_mib:>7.0f} MiB {r.seconds:>8}", flush=True)
        (out / "summary.json").write_text(json.dumps(
            {"n": args.n, "results": [asdict(x) for x in results]}, indent=1) + "\n")
    bad = [r for r in results if r.crashes or r.hangs or r.peak_rss_mib >= 1024]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
