"""Timing a whole command for the benchmarks: wall and CPU seconds and peak RSS."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

#: where the big captures live (sample_traces/capture_big.sh writes there): never committed
CAPTURES = Path(os.environ.get("REPLAY_CAPTURES", Path.home() / "replay-captures"))
ROOT = Path(__file__).resolve().parents[2]
#: a small committed trace reported once, untimed, before a benchmark: the first run
#: after an installation or a change of the sources compiles the hot loops, a one-time
#: cost not to count in the runs
WARM_UP = ROOT / "sample_traces" / "ftrace-thp.dat"


class Timing(NamedTuple):
    """One run of a command: wall and CPU (user + sys) seconds, peak RSS in KiB."""

    wall: float
    cpu: float
    rss_kib: int


class CommandFailed(SystemExit):
    """A timed command exited non-zero: exits with the command and its stderr's tail
    unless caught. `stderr` is the command's own (with /usr/bin/time's "Command exited
    with non-zero status N" or "Command terminated by signal N" as its last line);
    `timing` is its wall, CPU and peak RSS up to the failure."""

    def __init__(self, cmd: list[str], stderr: str, timing: Timing) -> None:
        super().__init__(f"failed: {' '.join(cmd)}\n{stderr[-2000:]}")
        self.stderr = stderr
        self.timing = timing


def timed(cmd: list[str]) -> Timing:
    """`Timing` of `cmd` run under /usr/bin/time -v (raises `CommandFailed` if it fails)."""
    return timed_output(cmd, capture=False)[0]


def timed_output(cmd: list[str], capture: bool = True) -> tuple[Timing, str]:
    """`timed`, and the standard output of `cmd` when `capture` (else discarded: "").

    Python's bytecode cache is on, as in a normal installation, even where the calling
    shell turned it off (PYTHONDONTWRITEBYTECODE): recompiling every module would add
    ~50 ms to each run of ours.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    res = subprocess.run(["/usr/bin/time", "-v", *cmd], stderr=subprocess.PIPE, text=True,
                         stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                         cwd=ROOT, env=env)

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (\S+)", res.stderr).group(1)

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
    seconds = sum(float(x) * 60**i for i, x in enumerate(reversed(wall)))
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    rss = int(field("Maximum resident set size (kbytes)"))
    timing = Timing(seconds, cpu, rss)
    if res.returncode != 0:
        raise CommandFailed(cmd, res.stderr[:res.stderr.rfind("\tCommand being timed:")], timing)
    return timing, res.stdout or ""


def best(cmd: list[str], runs: int) -> Timing:
    """`timed` of the fastest of `runs` runs, after one untimed warm-up (page cache)."""
    timed(cmd)
    return min((timed(cmd) for _ in range(runs)), key=lambda r: r.wall)


def repeated(trace: Path, k: int, out: Path) -> Path:
    """The ftrace text `trace` (plain or .xz) played `k` times into `out`, each copy 1 s
    after the last: a load of k times the events (the copies' allocations of pages the
    previous copy left allocated are inconsistencies to the replay, counted and skipped)."""
    import lzma
    import re

    opener = lzma.open if trace.suffix == ".xz" else open
    with opener(trace, "rt") as f:
        lines = f.read().splitlines(keepends=True)
    head = [x for x in lines if x.startswith("#")]
    body = [x for x in lines if not x.startswith("#")]
    stamp = re.compile(r"(\s)(\d+\.\d+):")
    last = float(stamp.search(body[-1]).group(2)) - float(stamp.search(body[0]).group(2))
    with open(out, "w") as f:
        f.writelines(head)
        for i in range(k):
            shift = i * (last + 1.0)
            f.writelines(stamp.sub(lambda m, s=shift: f"{m.group(1)}{float(m.group(2)) + s:.6f}:",
                                   x, count=1) for x in body)
    return out


def warm_up(work: Path) -> Timing:
    """`replay report` of WARM_UP in a new directory under `work`, so that the compiled
    code is cached before the timed runs; its timing, to print."""
    run = work / "warm-up"
    run.mkdir()
    (run / WARM_UP.name).symlink_to(WARM_UP)
    t = timed([sys.executable, "-m", "replay", "report", str(run / WARM_UP.name), "-o",
               str(run / "report.html"), "-q"])
    shutil.rmtree(run)
    return t
