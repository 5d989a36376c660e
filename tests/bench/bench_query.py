"""Benchmark: the order x migratetype query over >= 100M events vs `perf kmem --page stat`.

Builds a dataset of at least --events events by replicating a real capture (ingested
here) with shifted seq, timestamps and pfns (DuckDB COPY to Parquet, in a temporary
directory that is deleted afterwards), times the `order_migratetype` named query on it
in a fresh process, and in the same run times `perf kmem --page stat` on the largest
real perf.data. Prints events/s for both and the ratio (target: >= 10x). Peak RSS of
both comes from /usr/bin/time -v.

    python tests/bench/bench_query.py [--trace $REPLAY_CAPTURES/big.trace.txt]
        [--perf-data $REPLAY_CAPTURES/big-perf.data] [--events 100000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from replay.dataset import EVENTS_FILE, META_FILE  # noqa: E402
from replay.ingestion import ingest  # noqa: E402
from ingest.schema import EVENTS  # noqa: E402
from tests.bench.timing import CAPTURES, ROOT, timed_output  # noqa: E402

#: pfn shift between copies: 2^28 pages (1 TiB of 4 KiB pages), keeps every block aligned
PFN_SHIFT = 1 << 28

QUERY_SNIPPET = """
import sys, time
sys.path.insert(0, {root!r})
from replay.database import open_datasets
t0 = time.perf_counter()
with open_datasets([{dataset!r}]) as db:
    table = db.fetch_query("order_migratetype")
elapsed = time.perf_counter() - t0
print(elapsed, sum(table.column("requests").to_pylist()))
"""


def replicate(source: Path, out: Path, target: int) -> int:
    """Write `out`, a dataset of `source` repeated until it holds >= target events."""
    meta = json.loads((source / META_FILE).read_text())
    n = meta["events"]
    span = (meta["time_span"]["duration_ns"] or 0) + 1
    copies = math.ceil(target / n)
    cols = [f'"{f.name}"' for f in EVENTS]
    shifted = {
        '"seq"': f'"seq" + {{k}}::BIGINT * {n}',
        '"ts_ns"': f'"ts_ns" + {{k}}::BIGINT * {span}',
        '"pfn"': f'"pfn" + {{k}}::BIGINT * {PFN_SHIFT}',
    }
    select = ", ".join(f"{shifted.get(c, c)} AS {c}" for c in cols)
    src = str(source / EVENTS_FILE)
    union = "\nUNION ALL\n".join(
        f"SELECT {select.format(k=k)} FROM read_parquet('{src}')" for k in range(copies))
    out.mkdir()
    con = duckdb.connect()
    # Rows need not keep file order (every view orders by seq): without it DuckDB streams
    # the copies in bounded memory instead of buffering them (18 GB RSS otherwise).
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET memory_limit = '2GB'")
    con.execute("SET temp_directory = $dir", {"dir": str(out.parent / "duckdb-tmp")})
    con.execute(f"COPY ({union}) TO '{out / EVENTS_FILE}' "
                "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1048576)")
    meta["events"] = n * copies
    meta["event_counts"] = {k: v * copies for k, v in meta["event_counts"].items()}
    meta["source"]["replicated"] = f"{copies} copies, pfn + k * {PFN_SHIFT}"
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    return n * copies


def perf_kmem(perf_data: Path) -> tuple[float, int, int]:
    """(seconds, events handled, peak RSS KiB) of `perf kmem --page stat`."""
    # perf kmem stops parsing options at the subcommand: -i must come before "stat".
    t, out = timed_output(["perf", "kmem", "-i", str(perf_data), "--page", "stat"])
    totals = re.findall(r"Total (?:allocation|free) requests\s*:\s*(\d+)", out)
    return t.wall, sum(map(int, totals)), t.rss_kib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=CAPTURES / "big.trace.txt",
                    help="real capture to replicate (any format replay ingests)")
    ap.add_argument("--perf-data", type=Path, default=CAPTURES / "big-perf.data",
                    help="perf.data for perf kmem (the largest real one)")
    ap.add_argument("--events", type=int, default=100_000_000,
                    help="events in the replicated dataset (at least)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the temporary data goes")
    args = ap.parse_args()
    if shutil.which("perf") is None:
        sys.exit("perf is not installed")

    work = Path(tempfile.mkdtemp(prefix="bench-query-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        source = ingest(args.trace, work / "source", quiet=True)
        n_source = json.loads((source / META_FILE).read_text())["events"]
        print(f"ingested {args.trace}: {n_source:,} events in {time.perf_counter() - t0:.1f} s, "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        t0 = time.perf_counter()
        events = replicate(source, work / "replicated", args.events)
        size = (work / "replicated" / EVENTS_FILE).stat().st_size
        print(f"replicated to {events:,} events ({size / 2**30:.2f} GiB Parquet) "
              f"in {time.perf_counter() - t0:.1f} s; peak RSS so far "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

        snippet = QUERY_SNIPPET.format(root=str(ROOT), dataset=str(work / "replicated"))
        runs = []
        for _ in range(3):
            t, out = timed_output([sys.executable, "-c", snippet])
            elapsed, allocs = out.split()
            runs.append((float(elapsed), t.rss_kib))
        q_time, q_rss = min(runs)
        q_rate = events / q_time
        print(f"replay order_migratetype: {events:,} events in {q_time:.2f} s "
              f"(best of 3: {', '.join(f'{t:.2f}' for t, _ in runs)}) = {q_rate:,.0f} events/s, "
              f"{int(allocs):,} allocations counted, peak RSS {q_rss / 1024:.0f} MiB")

        p_time, p_events, p_rss = perf_kmem(args.perf_data)
        p_rate = p_events / p_time
        print(f"perf kmem --page stat: {p_events:,} events ({args.perf_data}) in {p_time:.2f} s "
              f"= {p_rate:,.0f} events/s, peak RSS {p_rss / 1024:.0f} MiB")
        print(f"ratio: {q_rate / p_rate:.1f}x perf kmem's event rate (target >= 10x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
