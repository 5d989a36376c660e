"""End to end on the real text samples: every event against an independent parse.

The oracle is written here, line by line with Python's `re` (nothing shared with the
compiled scanner), and, where the capture has a companion trace.dat, the `trace-cmd
report` text of that file (same ring buffer as the kernel's own text), and for perf the
`perf script -F` outputs of the same perf.data.
"""

from __future__ import annotations

import hashlib
import lzma
import re
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from replay.ingestion import ingest
from tests.conftest import SAMPLES, rows

ALIASES = {"mm_page_free_direct": "mm_page_free", "mm_pagevec_free": "mm_page_free_batched"}
PAGE_EVENTS = {"mm_page_alloc", "mm_page_free", "mm_page_free_batched",
               "mm_page_alloc_zone_locked", "mm_page_pcpu_drain", "mm_page_alloc_extfrag",
               *ALIASES}
INT_KEYS = ("order", "migratetype", "percpu_refill", "alloc_order", "fallback_order",
            "alloc_migratetype", "fallback_migratetype", "change_ownership")

FTRACE_LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:[^\s\d]\S*\s+)?(?P<secs>\d+)\.(?P<frac>\d+):\s+(?P<event>\w+):\s+(?P<body>.*)$"
)
PERF_LINE = re.compile(
    r"^\s*(?P<comm>\S.*?)\s+(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<secs>\d+)\.(?P<frac>\d+):"
    r"\s+\w+:(?P<event>\w+):\s+(?P<body>.*)$"
)
# the dso of a deleted mapping ends in its own parentheses: `(/memfd:x (deleted))`
FRAME_LINE = re.compile(r"^\s+(?P<addr>[0-9a-f]+) (?P<sym>.*?)"
                        r"(?: \((?P<dso>(?:[^()]|\([^()]*\))*)\))?$")
COLUMNS = ("ts_ns", "cpu", "pid", "comm", "event", "pfn", "order", "gfp_flags") + INT_KEYS[1:]


def _text(path: Path) -> list[str]:
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt") as f:
        return f.read().splitlines()


def oracle(path: Path) -> tuple[list[tuple], list[list[tuple]]]:
    """(events as COLUMNS tuples, callchain frames (addr, symbol, dso) of each event)."""
    lines = _text(path)
    perf = "perf" in path.name
    events, frames = [], []
    current = None
    for line in lines:
        m = (PERF_LINE if perf else FTRACE_LINE).match(line)
        if m is None:
            f = FRAME_LINE.match(line) if perf else None
            if f and current is not None:
                sym = None if f["sym"] == "[unknown]" else f["sym"]
                current.append((int(f["addr"], 16), sym, f["dso"]))
            elif not f:
                current = None
            continue
        current = None
        if m["event"] not in PAGE_EVENTS:
            continue
        kv = dict(t.split("=", 1) for t in m["body"].split() if "=" in t)
        pfn = int(kv["pfn"], 0)
        if re.fullmatch(r"0+|0x0+|\(null\)|\(nil\)", kv["page"]) or pfn == -1:
            pfn = None
        ts = int(m["secs"]) * 10**9 + int(m["frac"].ljust(9, "0"))
        ints = {k: int(kv[k]) if k in kv else None for k in INT_KEYS}
        events.append((ts, int(m["cpu"]), int(m["pid"]), m["comm"].strip(),
                       ALIASES.get(m["event"], m["event"]), pfn, ints["order"],
                       kv.get("gfp_flags"), *(ints[k] for k in INT_KEYS[1:])))
        current = []
        frames.append(current)
    return events, frames


def dataset_rows(ds: Path) -> list[tuple]:
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    return rows(ds, f"SELECT {cols} FROM events ORDER BY seq")


def dataset_frames(ds: Path) -> list[list[tuple]]:
    con = duckdb.connect()
    if not (ds / "stacks.parquet").exists():
        n = con.execute(f"SELECT count(*) FROM read_parquet('{ds}/events.parquet')").fetchone()
        return [[] for _ in range(n[0])]
    got = con.execute(
        f"""SELECT list(CASE WHEN s.stack_id IS NULL THEN NULL
                             ELSE struct_pack(a := s.addr, s := s.symbol, d := s.dso) END
                        ORDER BY s.depth)
            FROM read_parquet('{ds}/events.parquet') e
            LEFT JOIN read_parquet('{ds}/stacks.parquet') s USING (stack_id)
            GROUP BY e.seq ORDER BY e.seq""").fetchall()
    return [[(f["a"], f["s"], f["d"]) for f in r[0] if f is not None] for r in got]


def _distinct(paths) -> list[Path]:  # noqa: ANN001
    """One of each set of byte-identical files (the converted trace.dat reports are)."""
    seen: dict[str, Path] = {}
    for p in sorted(paths):
        seen.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), p)
    return sorted(seen.values())


TEXT_SAMPLES = _distinct(p for p in SAMPLES.glob("*.txt.xz")
                         if re.search(r"\.(trace|report(-t)?|perf-\w+)\.txt\.xz$", p.name))
WITH_REPORT = [p for p in sorted(SAMPLES.glob("*.trace.txt.xz"))
               if p.with_name(p.name.replace(".trace.", ".report-t.")).exists()]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    out = tmp_path_factory.mktemp("samples")
    cache: dict[str, Path] = {}

    def _get(path: Path) -> Path:
        if path.name not in cache:
            cache[path.name] = ingest(path, out / (path.name + ".replay"), quiet=True)
        return cache[path.name]

    return _get


def test_samples_present():
    assert WITH_REPORT
    kinds = {re.sub(r"^[\w-]+?\.(v\w+\.)?", "", p.name) for p in TEXT_SAMPLES}
    assert {"trace.txt.xz", "report.txt.xz", "report-t.txt.xz", "perf-script.txt.xz"} <= kinds


@pytest.mark.parametrize("path", TEXT_SAMPLES, ids=lambda p: p.name)
def test_every_event_matches_independent_parse(path, ingested):
    ds = ingested(path)
    events, frames = oracle(path)
    assert len(events) > 1000
    got = dataset_rows(ds)
    assert len(got) == len(events)
    mismatches = [(i, g, e) for i, (g, e) in enumerate(zip(got, events)) if g != e]
    assert not mismatches[:5], f"{len(mismatches)} events differ"
    if any(frames):
        assert dataset_frames(ds) == frames


def _by_cpu(rows: list[tuple]) -> dict[int, list[tuple]]:
    out = defaultdict(list)
    for r in rows:
        out[r[1]].append((r[0],) + r[2:])
    return out


@pytest.mark.parametrize("trace", WITH_REPORT, ids=lambda p: p.name)
def test_kernel_text_matches_trace_cmd_report_of_same_buffer(trace, ingested):
    report = trace.with_name(trace.name.replace(".trace.", ".report-t."))
    kernel = dataset_rows(ingested(trace))
    tc = dataset_rows(ingested(report))
    assert len(kernel) == len(tc)
    # kernel text prints µs rounded from ns (kernel ns2usecs adds 500), report -t prints
    # ns; ties within a µs may interleave CPUs differently, so compare per CPU
    rounded = [((r[0] + 500) // 1000 * 1000,) + r[1:] for r in tc]
    assert _by_cpu(kernel) == _by_cpu(rounded)


@pytest.mark.parametrize("script", sorted(SAMPLES.glob("*.perf-script.txt.xz")),
                         ids=lambda p: p.name)
def test_perf_script_matches_perf_field_outputs(script, ingested):
    expected = script.with_name(script.name.replace(".perf-script.", ".perf-expected."))
    assert dataset_rows(ingested(script)) == dataset_rows(ingested(expected))
    sym = script.with_name(script.name.replace(".perf-script.", ".perf-sym."))
    if sym.exists():  # perf's own symbols (-F ip,sym): the same addresses and functions
        ours = [[(a, s.split("+0x")[0] if s else "[unknown]") for a, s, _ in f]
                for f in dataset_frames(ingested(script))]
        theirs = [[(a, s or "[unknown]") for a, s, _ in f] for f in oracle(sym)[1]]
        assert ours == theirs
