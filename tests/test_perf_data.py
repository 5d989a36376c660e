"""perf.data reader on real captures, checked against `perf script` for the same files.

The oracles are the `perf script` outputs committed next to each sample (and, where perf
is installed, perf run live): every sample's (cpu, ts_ns, pid = tid, event, pfn, order,
gfp_flags, comm) and the kernel frames of every callchain must be equal.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from replay.dataset import read_meta
from replay.ingestion import ingest
from tests.conftest import SAMPLES

KALLSYMS = SAMPLES / "perf.kallsyms.xz"
#: sample name -> (perf.data file, `perf script -F comm,tid,cpu,time,event,trace --ns`)
CASES = {
    "perf-g": ("perf-g.perf.data", "perf-g.perf-expected.txt.xz"),
    "perf-nog": ("perf-nog.perf.data", "perf-nog.perf-expected.txt.xz"),
    "perf-pipe": ("perf-pipe.perf-pipe.data", "perf-pipe.perf-pipe-expected.txt.xz"),
    "perf-z": ("perf-z.perf.data", "perf-z.perf-expected.txt.xz"),
    # perf record --threads: a directory (data, data.0, data.1; each xz-compressed)
    "perf-threads": ("perf-threads.perf.data", "perf-threads.perf-expected.txt.xz"),
    # perf record --threads -z: each thread's file is its own zstd stream
    "perf-threads-z": ("perf-threads-z.perf.data", "perf-threads-z.perf-expected.txt.xz"),
    # a BPF program loaded before and one during the recording: KSYMBOL records
    "perf-bpf": ("perf-bpf.perf.data.xz", "perf-bpf.perf-expected.txt.xz"),
}
#: samples with callchains -> default `perf script --ns` output (frames with sym+off)
CALLCHAINS = {"perf-g": "perf-g.perf-script.txt.xz", "perf-z": "perf-z.perf-script.txt.xz",
              "perf-threads": "perf-threads.perf-script.txt.xz",
              "perf-bpf": "perf-bpf.perf-script.txt.xz"}

# An independent reading of perf script's tracepoint lines: comm (may hold spaces), tid,
# [cpu], secs.nsecs, sys:event, then the rendered fields.
SAMPLE_LINE = re.compile(r"^\s*(?P<comm>.*?)\s+(?P<tid>-?\d+)\s+\[(?P<cpu>\d+)\]\s+"
                         r"(?P<s>\d+)\.(?P<ns>\d{9}):\s+\w+:(?P<event>\w+):\s*(?P<body>.*)$")
#: bracketed dsos perf prints for frames that are not kernel code
USER_BRACKETED = {"[unknown]", "[vdso]", "[vsyscall]", "[uprobes]"}
FRAME_LINE = re.compile(r"^\t\s*(?P<addr>[0-9a-f]+) (?P<sym>.*) \((?P<dso>.*)\)$")



#: directory captures: perf merges the files in readdir order, which depends on the
#: filesystem, the reader in file-number order; samples of equal time from different
#: files (different CPUs) may thus swap: these are compared in (time, cpu) order
DIRECTORIES = {"perf-threads", "perf-threads-z"}


def by_time_cpu(samples: list[tuple], items: list) -> list:
    """`items` (one per sample) in the stable (ts_ns, cpu) order of `samples`."""
    order = sorted(range(len(samples)), key=lambda i: (samples[i][1], samples[i][0]))
    return [items[i] for i in order]


def readme_top_paths_sql() -> str:
    """The "top kernel call paths of order >= 3 requests" query, as docs/queries.md gives it."""
    doc = (SAMPLES.parent / "docs" / "queries.md").read_text()
    section = doc[doc.index("## 2. Kernel call paths"):]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def _value(body: str, key: str) -> str | None:
    m = re.search(rf"(?:^|\s){key}=(\S+)", body)
    return m.group(1) if m else None


def expected_samples(lines) -> list[tuple]:
    """(cpu, ts_ns, pid, event, pfn, order, gfp_flags, comm) of each perf script line."""
    out = []
    for line in lines:
        m = SAMPLE_LINE.match(line.rstrip("\n"))
        if m is None:
            assert not line.strip() or line.startswith("\t"), line
            continue
        body = m["body"]
        pfn, order = _value(body, "pfn"), _value(body, "order")
        pfn = int(pfn, 0) if pfn is not None else None
        if pfn == 0 and m["event"] == "mm_page_alloc":
            pfn = None  # a failed allocation: pfn -1 in the record, printed as 0
        out.append((int(m["cpu"]), int(m["s"]) * 10**9 + int(m["ns"]), int(m["tid"]),
                    m["event"], pfn, int(order) if order is not None else None,
                    _value(body, "gfp_flags"), m["comm"]))
    return out


def expected_kernel_frames(lines) -> list[list[tuple[int, str]]]:
    """Per sample of a default perf script output: its kernel frames (addr, sym+off)."""
    samples: list[list[tuple[int, str]]] = []
    for line in lines:
        if not line.startswith("\t"):
            if line.strip():
                samples.append([])  # a sample line; its frames follow
        elif line.rstrip().endswith("])"):
            m = FRAME_LINE.match(line.rstrip("\n"))
            if m["dso"] not in USER_BRACKETED:  # a kernel or module frame
                samples[-1].append((int(m["addr"], 16), m["sym"]))
    return samples


def got_samples(ds: Path) -> list[tuple]:
    return duckdb.sql(f"""SELECT cpu, ts_ns, pid, event, pfn, "order", gfp_flags, comm
                          FROM '{ds}/events.parquet' ORDER BY seq""").fetchall()


def got_kernel_frames(ds: Path) -> list[list[tuple[int, str]]]:
    rows = duckdb.sql(f"""
        SELECT e.seq, list((s.addr, coalesce(s.symbol, '[unknown]')) ORDER BY s.depth)
               FILTER (WHERE s.context = 'kernel')
        FROM '{ds}/events.parquet' e LEFT JOIN '{ds}/stacks.parquet' s USING (stack_id)
        GROUP BY e.seq ORDER BY e.seq""").fetchall()
    return [[tuple(f.values()) if isinstance(f, dict) else tuple(f) for f in frames or []]
            for _, frames in rows]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """Every sample ingested once, callchains symbolized with the committed kallsyms."""
    out = {}
    for name, (data, _) in CASES.items():
        dest = tmp_path_factory.mktemp("perf") / f"{name}.replay"
        kallsyms = KALLSYMS if name in CALLCHAINS else None
        out[name] = ingest(SAMPLES / data, dest, quiet=True, kallsyms=kallsyms)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_samples_equal_perf_script(datasets, name):
    with lzma.open(SAMPLES / CASES[name][1], "rt") as f:
        expected = expected_samples(f)
    got = got_samples(datasets[name])
    assert len(got) == len(expected) > 1000
    if name in DIRECTORIES:
        expected, got = by_time_cpu(expected, expected), by_time_cpu(got, got)
    mismatches = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got)) if e != g]
    assert mismatches == [], mismatches[:5]


@pytest.mark.parametrize("name", list(CALLCHAINS))
def test_kernel_frames_equal_perf_script(datasets, name):
    with lzma.open(SAMPLES / CALLCHAINS[name], "rt") as f:
        expected = expected_kernel_frames(f)
    got = got_kernel_frames(datasets[name])
    assert len(got) == len(expected)
    assert sum(map(len, expected)) > 10000
    if name in DIRECTORIES:
        with lzma.open(SAMPLES / CASES[name][1], "rt") as f:
            expected = by_time_cpu(expected_samples(f), expected)
        got = by_time_cpu(got_samples(datasets[name]), got)
    bad = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got)) if e != g]
    assert bad == [], bad[:3]
    meta = read_meta(datasets[name])
    assert meta["stacks"]["kallsyms"] == f"file {KALLSYMS}"
    assert meta["stacks"]["unknown_kernel_frames"] == 0
    assert meta["stacks"]["kernel_frames"] > 1000


def test_stacks_are_deduplicated_with_context(datasets):
    ds = datasets["perf-g"]
    per_stack = duckdb.sql(f"""
        SELECT stack_id, count(*), max(depth) + 1, list(context ORDER BY depth)
        FROM '{ds}/stacks.parquet' GROUP BY stack_id""").fetchall()
    n_stacks = duckdb.sql(f"SELECT count(DISTINCT stack_id) FROM '{ds}/events.parquet'").fetchall()[0]
    assert len(per_stack) == n_stacks[0] < 7327 / 5  # far fewer stacks than samples
    for _, frames, depth, contexts in per_stack:
        assert frames == depth  # depths 0..n-1, no gaps
        assert contexts[0] == "kernel"  # the allocator is innermost
        first_user = contexts.index("user") if "user" in contexts else len(contexts)
        assert set(contexts[:first_user]) == {"kernel"} and set(contexts[first_user:]) <= {"user"}
    # the same kernel+user chain never gets two ids
    dup = duckdb.sql(f"""SELECT count(*) FROM (SELECT list(addr ORDER BY depth) l
                         FROM '{ds}/stacks.parquet' GROUP BY stack_id)
                         GROUP BY l HAVING count(*) > 1""").fetchall()
    assert dup == []


def test_meta(datasets):
    meta = read_meta(datasets["perf-g"])
    assert meta["format"] == "perf.data" and meta["format_version"] == "2"
    assert meta["kernel_release"] == "6.18.44-fc-v782"
    assert meta["cpus"] == 2 and meta["page_size"] == 4096 and meta["clock"] == "perf"
    assert meta["perf"]["hostname"] == "vm"
    assert meta["perf"]["cmdline"].startswith("/usr/bin/perf record -e kmem:mm_page_alloc")
    assert meta["perf"]["finished_rounds"] > 0
    assert meta["truncated"] is False and meta["lost_events"]["total"] == 0
    assert meta["event_counts"] == {"mm_page_alloc": 2180, "mm_page_alloc_zone_locked": 962,
                                    "mm_page_free": 2147, "mm_page_free_batched": 2038}
    pipe = read_meta(datasets["perf-pipe"])
    assert pipe["format_version"] == "2 (pipe)"
    assert pipe["kernel_release"] == "6.18.44-fc-v782" and pipe["cpus"] == 2
    assert pipe["perf"]["records_by_type"]["66"] == 1  # HEADER_TRACING_DATA record
    z = read_meta(datasets["perf-z"])
    assert z["perf"]["records_by_type"]["81"] > 0  # COMPRESSED records
    tz = read_meta(datasets["perf-threads-z"])["perf"]
    assert tz["records_by_type"]["81"] == 15 and tz["data_files"] == 3
    assert not (datasets["perf-nog"] / "stacks.parquet").exists()


def test_without_kallsyms_on_another_machine(tmp_path, monkeypatch):
    """Recorded elsewhere and no --kallsyms: addresses kept, symbols null, meta says why."""
    import ingest.perf_symbols as perf_symbols

    real = os.uname()
    fake = os.uname_result((real.sysname, "elsewhere", "1.2.3", real.version, real.machine))
    monkeypatch.setattr(perf_symbols.os, "uname", lambda: fake)
    ds = ingest(SAMPLES / "perf-g.perf.data", tmp_path / "g.replay", quiet=True)
    stacks = read_meta(ds)["stacks"]
    assert stacks["kallsyms"] is None and "pass --kallsyms" in stacks["why_no_symbols"]
    assert stacks["unknown_kernel_frames"] == stacks["kernel_frames"] > 1000
    assert duckdb.sql(f"SELECT count(symbol) FROM '{ds}/stacks.parquet'").fetchall()[0] == (0,)


def test_top_kernel_call_paths_of_high_order_requests(datasets):
    """The README's question, answered by DuckDB from events joined with stacks."""
    ds = datasets["perf-g"]
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM '{ds}/events.parquet'")
    con.execute(f"CREATE VIEW stacks AS SELECT * FROM '{ds}/stacks.parquet'")
    got = con.execute(readme_top_paths_sql()).fetchall()
    # the same question answered from perf script's text
    counts: Counter = Counter()
    with lzma.open(SAMPLES / CALLCHAINS["perf-g"], "rt") as f:
        samples = expected_kernel_frames(f)
    with lzma.open(SAMPLES / CASES["perf-g"][1], "rt") as f:
        fields = expected_samples(f)
    for (_, _, _, event, _, order, _, _), frames in zip(fields, samples):
        if event == "mm_page_alloc" and order >= 3:
            counts[" <- ".join(re.sub(r"\+0x[0-9a-f]+$", "", s) for _, s in frames)] += 1
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert got == expected
    assert sum(n for _, n in got) >= 20 and got[0][0].startswith("__alloc_frozen_pages_noprof")


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed")
def test_live_perf_script(datasets, tmp_path):
    """perf itself, run now, agrees with the dataset (and with the committed oracles)."""
    for name in ("perf-g", "perf-pipe"):
        out = subprocess.run(
            ["perf", "script", "-i", str(SAMPLES / CASES[name][0]),
             "-F", "comm,tid,cpu,time,event,trace", "--ns"],
            capture_output=True, text=True, check=True)
        expected = expected_samples(out.stdout.splitlines())
        assert got_samples(datasets[name]) == expected
    me = os.uname()
    meta = read_meta(datasets["perf-g"])["perf"]
    if (me.nodename, me.release) != (meta["hostname"], meta["os_release"]):
        pytest.skip("callchain symbols: perf script names them from this machine's kallsyms, "
                    "and perf-g was recorded on another machine")
    out = subprocess.run(["perf", "script", "-i", str(SAMPLES / "perf-g.perf.data"), "--ns"],
                         capture_output=True, text=True, check=True)
    frames = expected_kernel_frames(out.stdout.splitlines())
    if not any(s for f in frames for _, s in f if s != "[unknown]"):
        pytest.skip("perf could not read this machine's kallsyms (not root?)")
    ds = ingest(SAMPLES / "perf-g.perf.data", tmp_path / "live.replay", quiet=True)
    assert got_kernel_frames(ds) == frames
