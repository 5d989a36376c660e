"""Check `replay ingest` of a big real kernel text trace, every event, against oracles.

    python tests/bench/compare_big_text.py [TRACE] [--dat DAT] [--dataset DIR]

Defaults: $REPLAY_CAPTURES/big.trace.txt (>= 1M events of the kernel's `trace` file) and
its companion big.dat (`trace-cmd extract` of the same ring buffer). Ingests TRACE with
the `replay` command (unless --dataset names an existing result), then compares each
event's (cpu, ts, pid, event, pfn, order, migratetype) with:

  A. a plain Python parse of TRACE, one `re` match per line, in file order;
  B. `trace-cmd report -t -i DAT` (trace-cmd decodes the binary ring buffer itself),
     per CPU (ties within a microsecond may interleave CPUs differently in the two
     texts), its ns times rounded to µs as the kernel prints them (ns2usecs adds 500).

Prints the number of events compared and agreeing for each oracle; exits 1 on any
disagreement. Streams everything: memory stays bounded.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

import pyarrow.parquet as pq
from timing import CAPTURES

FIELDS = ("cpu", "ts_ns", "pid", "event", "pfn", "order", "migratetype")
ALIASES = {"mm_page_free_direct": "mm_page_free", "mm_pagevec_free": "mm_page_free_batched"}
PAGE = {"mm_page_alloc", "mm_page_free", "mm_page_free_batched", "mm_page_alloc_zone_locked",
        "mm_page_pcpu_drain", "mm_page_alloc_extfrag", *ALIASES}
LINE = re.compile(
    r"^\s*.*?-(\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(\d+)\]\s+(?:[^\s\d]\S*\s+)?(\d+)\.(\d+):"
    r"\s+(\w+):\s+(.*)$"
)
NULL_PAGE = re.compile(r"0+|0x0+|\(null\)|\(nil\)")


def parse_lines(lines: Iterator[str]) -> Iterator[tuple]:
    """Page events of kernel / trace-cmd text as FIELDS tuples (ts in ns)."""
    for line in lines:
        m = LINE.match(line)
        if m is None or m[5] not in PAGE:
            continue
        kv = dict(t.split("=", 1) for t in m[6].split() if "=" in t)
        pfn = int(kv["pfn"], 0)
        if NULL_PAGE.fullmatch(kv.get("page", "")) or pfn == -1:
            pfn = None
        order = int(kv["order"]) if "order" in kv else (0 if "batched" in m[5] else None)
        mt = int(kv["migratetype"]) if "migratetype" in kv else None
        ts = int(m[3]) * 10**9 + int(m[4].ljust(9, "0"))
        yield (int(m[2]), ts, int(m[1]), ALIASES.get(m[5], m[5]), pfn, order, mt)


def dataset_events(dataset: Path) -> Iterator[tuple]:
    """The dataset's events as FIELDS tuples, in seq order."""
    f = pq.ParquetFile(dataset / "events.parquet")
    for batch in f.iter_batches(batch_size=65536, columns=list(FIELDS)):
        cols = [batch.column(c).to_pylist() for c in FIELDS]
        yield from zip(*cols)


def compare_in_order(ours: Iterator[tuple], oracle: Iterator[tuple]) -> tuple[int, int, list]:
    n = agree = 0
    diffs = []
    for a, b in zip_longest(ours, oracle):
        n += 1
        if a == b:
            agree += 1
        elif len(diffs) < 5:
            diffs.append((n - 1, a, b))
    return n, agree, diffs


def compare_per_cpu(ours: Iterator[tuple], oracle: Iterator[tuple]) -> tuple[int, int, list]:
    """Match the two streams CPU by CPU; what is left unmatched counts as disagreement."""
    pending: dict[tuple[int, int], deque] = {}
    n = agree = 0
    diffs: list = []

    def push(side: int, ev: tuple) -> None:
        nonlocal agree, n
        other = pending.get((1 - side, ev[0]))
        if other:
            theirs = other.popleft()
            n += 1
            if theirs == ev:
                agree += 1
            elif len(diffs) < 5:
                diffs.append((n - 1, ev, theirs) if side == 0 else (n - 1, theirs, ev))
        else:
            pending.setdefault((side, ev[0]), deque()).append(ev)

    for a, b in zip_longest(ours, oracle):
        if a is not None:
            push(0, a)
        if b is not None:
            push(1, b)
    left = sum(len(q) for q in pending.values())
    if left:
        diffs.append(("unmatched", left, None))
    return n + left, agree, diffs


def to_us(events: Iterator[tuple]) -> Iterator[tuple]:
    for e in events:
        yield (e[0], (e[1] + 500) // 1000 * 1000) + e[2:]


def report(name: str, result: tuple[int, int, list]) -> bool:
    n, agree, diffs = result
    print(f"{name}: {agree:,} of {n:,} events agree on ({', '.join(FIELDS)})"
          f" = {100 * agree / max(n, 1):.4f}%")
    for d in diffs:
        print(f"  differs at {d[0]}: replay {d[1]} vs oracle {d[2]}")
    return agree == n and n > 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", nargs="?", type=Path, default=CAPTURES / "big.trace.txt")
    ap.add_argument("--dat", type=Path, default=None,
                    help="companion trace.dat (default: TRACE's name with .dat)")
    ap.add_argument("--dataset", type=Path, help="an existing dataset of TRACE to check")
    args = ap.parse_args()
    dat = args.dat or args.trace.with_name(args.trace.name.replace(".trace.txt", ".dat"))
    tmp = None
    dataset = args.dataset
    if dataset is None:
        tmp = Path(tempfile.mkdtemp(prefix="compare-big-"))
        dataset = tmp / "big.replay"
        subprocess.run([sys.executable, "-m", "replay", "ingest", str(args.trace), "-o",
                        str(dataset), "-q"], check=True, cwd=Path(__file__).parents[2])
    ok = True
    try:
        with open(args.trace, errors="replace") as f:
            ok &= report("A. Python parse of the text", compare_in_order(
                dataset_events(dataset), parse_lines(f)))
        if shutil.which("trace-cmd") and dat.exists():
            proc = subprocess.Popen(["trace-cmd", "report", "-t", "-i", str(dat)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True, errors="replace")
            ok &= report(f"B. trace-cmd report -t of {dat.name}", compare_per_cpu(
                dataset_events(dataset), to_us(parse_lines(proc.stdout))))
            proc.wait()
        else:
            print(f"B. skipped: no trace-cmd or no {dat}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
