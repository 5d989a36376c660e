"""Inputs that once hung, grew without bound or gave silently wrong values: each ends in
a one-line error, or in a dataset that counts what it could not read."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zstandard

from ingest.lines import MAX_LINE_BYTES
from tests.conftest import ROOT, SAMPLES, one_line_error, rows, run_cli

#: a guard against the hang coming back, far above the second the ingest takes
HANG_GUARD = 600


def _meta(ds: Path) -> dict:
    return json.loads((ds / "meta.json").read_text())


@pytest.fixture(scope="module")
def ftrace_text() -> bytes:
    return lzma.open(SAMPLES / "ftrace-thp.trace.txt.xz").read()


@pytest.mark.parametrize("cut", [8, 50, 100])
def test_cut_threads_z_member_is_truncated_not_a_hang(tmp_path, cut):
    src = SAMPLES / "perf-threads-z.perf.data"
    d = tmp_path / "cut.perf.data"
    d.mkdir()
    for name in ("data", "data.0", "data.1"):
        (d / name).write_bytes(lzma.open(src / name).read())
    whole = run_cli("ingest", d, "-o", tmp_path / "whole", "-q", timeout=HANG_GUARD)
    assert whole.returncode == 0, whole.stderr
    with open(d / "data.1", "r+b") as f:
        f.truncate(cut)
    r = run_cli("ingest", d, "-o", tmp_path / "cut", "-q", timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    assert "input is truncated" in r.stderr
    meta, full = _meta(tmp_path / "cut"), _meta(tmp_path / "whole")
    assert meta["truncated"] is True
    assert 0 < meta["events"] < full["events"]  # data and data.0 whole, data.1 cut


def test_overlong_line_is_counted_malformed(tmp_path, ftrace_text):
    lines = ftrace_text.splitlines(keepends=True)
    long = b"x" * (MAX_LINE_BYTES + 10) + b" mm_page_alloc: pfn=1 order=0\n"
    src = tmp_path / "t.txt"
    src.write_bytes(b"".join(lines[:50]) + long + b"".join(lines[50:]))
    # and one that runs past a block of BLOCK_BYTES, held whole in none
    src2 = tmp_path / "t2.txt"
    src2.write_bytes(b"".join(lines[:50]) + long * 9 + b"".join(lines[50:]))
    ref = tmp_path / "ref.txt"
    ref.write_bytes(ftrace_text)
    assert run_cli("ingest", ref, "-o", tmp_path / "ref", "-q").returncode == 0
    r = run_cli("ingest", src, "-o", tmp_path / "ds", "-q")
    assert r.returncode == 0, r.stderr
    meta, want = _meta(tmp_path / "ds"), _meta(tmp_path / "ref")
    assert meta["events"] == want["events"]
    assert meta["malformed"]["total"] == want["malformed"]["total"] + 1
    assert f"line 51: line longer than {MAX_LINE_BYTES} bytes" in meta["malformed"]["examples"]
    r = run_cli("ingest", src2, "-o", tmp_path / "ds2", "-q")
    assert r.returncode == 0, r.stderr
    meta = _meta(tmp_path / "ds2")
    assert meta["events"] == want["events"]
    assert meta["malformed"]["total"] == want["malformed"]["total"] + 9


#: runs a command and prints its peak RSS (KiB). A child's ru_maxrss starts from its
#: parent's resident size at fork (Linux), so the command is started by this small
#: process, not by the test runner (~600 MB deep into the suite)
_MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(r.returncode)")


def _peak_rss_mib(*args: object) -> tuple[subprocess.CompletedProcess, float]:
    """Run `replay ARGS` and return its result and its peak resident memory."""
    r = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "replay",
                        *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                       timeout=HANG_GUARD)
    *err, peak = r.stderr.splitlines()
    return (subprocess.CompletedProcess(args, r.returncode, r.stdout, "\n".join(err)),
            int(peak) / 1024)


def test_text_without_line_breaks_stays_bounded(tmp_path):
    src = tmp_path / "noline.txt"
    with open(src, "wb") as f:
        for _ in range(64):  # 512 MiB that is one line, sparse on disk
            f.seek(8 << 20, os.SEEK_CUR)
            f.write(b"a" * 4096)
    # holes read as NUL bytes: refused as binary at once, not buffered
    err = one_line_error(run_cli("ingest", src, "--input-format", "ftrace", "-q",
                                  "-o", tmp_path / "ds"))
    assert "binary data in a text trace" in err
    text = tmp_path / "text.txt"
    with open(text, "wb") as f:  # 256 MiB without a line break: held whole before
        for _ in range(256):
            f.write(b"a" * (1 << 20))
    r, peak = _peak_rss_mib("ingest", text, "--input-format", "ftrace", "-q", "-o",
                            tmp_path / "ds2")
    assert "no kmem page events found" in one_line_error(r)
    assert peak < 400


def test_trace_zero_padded_is_refused_as_binary(tmp_path, ftrace_text):
    src = tmp_path / "padded.txt"
    with open(src, "wb") as f:
        f.write(ftrace_text)
        f.truncate(len(ftrace_text) + (256 << 20))  # zeros, as a preallocated file
    err = one_line_error(run_cli("ingest", src, "-q", "-o", tmp_path / "ds"))
    assert "binary data in a text trace" in err and f"{src}:line " in err


def test_kallsyms_of_unbounded_size_is_refused(tmp_path):
    r = run_cli("ingest", SAMPLES / "perf-g.perf.data", "--kallsyms", "/dev/zero", "-q",
                "-o", tmp_path / "ds")
    err = one_line_error(r)
    assert err == "error: /dev/zero: larger than 256 MiB: not a kallsyms file"
    assert list(tmp_path.iterdir()) == []


def _same_events(a: Path, b: Path) -> None:
    q = "SELECT ts_ns, cpu, pid, event, pfn, \"order\" FROM events ORDER BY seq"
    assert rows(a, q) == rows(b, q)


def test_fifo_input_is_read(tmp_path, ftrace_text):
    ref = tmp_path / "ref.txt"
    ref.write_bytes(ftrace_text)
    assert run_cli("ingest", ref, "-o", tmp_path / "ref.replay", "-q").returncode == 0
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            for i in range(0, len(ftrace_text), 65536):
                f.write(ftrace_text[i : i + 65536])

    t = threading.Thread(target=feed)
    t.start()
    r = run_cli("ingest", fifo, "-o", tmp_path / "fifo.replay", "-q", timeout=HANG_GUARD)
    t.join()
    assert r.returncode == 0, r.stderr
    _same_events(tmp_path / "fifo.replay", tmp_path / "ref.replay")
    assert _meta(tmp_path / "fifo.replay")["source"]["path"] == str(fifo)


def test_stdin_input(tmp_path):
    data = (SAMPLES / "perf-pipe.perf-pipe.data").read_bytes()  # perf record -o -
    r = subprocess.run([sys.executable, "-m", "replay", "ingest", "-", "-o",
                        str(tmp_path / "stdin.replay"), "-q"], input=data, cwd=ROOT,
                       capture_output=True, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    assert run_cli("ingest", SAMPLES / "perf-pipe.perf-pipe.data", "-o",
                   tmp_path / "file.replay", "-q").returncode == 0
    _same_events(tmp_path / "stdin.replay", tmp_path / "file.replay")
    meta = _meta(tmp_path / "stdin.replay")
    assert meta["source"]["path"] == "<stdin>" and meta["format"] == "perf.data"
    no_o = subprocess.run([sys.executable, "-m", "replay", "ingest", "-"], input="",
                          cwd=ROOT, capture_output=True, text=True)
    assert no_o.stderr.strip() == "error: reading standard input needs -o DATASET"


_LINE = "bash-6300 [001] ..... {ts}: mm_page_alloc: page=0xffffea00042a7980 pfn=0x10a9e6 " \
        "order={order} migratetype={mt} gfp_flags=GFP_KERNEL\n"


@pytest.mark.parametrize("ts, order, mt", [
    ("9223372037.000000", 0, 0),  # ns past int64: wrapped to -9223372036854551616 before
    ("99999999999999999.000000", 0, 0),
    ("9999999999999999999", 0, 0),  # a raw counter clock past int64
    ("441.670898", -1, 0),
    ("441.670898", 0, -7),
    ("441.670898", 99999, 0),
])
def test_values_out_of_range_are_malformed(ingest_text, ts, order, mt):
    good = _LINE.format(ts="441.670897", order=0, mt=0)
    ds = ingest_text("# tracer: nop\n" + good + _LINE.format(ts=ts, order=order, mt=mt))
    meta = _meta(ds)
    assert meta["events"] == 1
    assert meta["malformed"]["total"] == 1
    assert rows(ds, "SELECT ts_ns, \"order\", migratetype FROM events") == [(441670897000, 0, 0)]


def test_largest_timestamp_that_fits_is_kept(ingest_text):
    ds = ingest_text("# tracer: nop\n" + _LINE.format(ts="9223372036.854775", order=0, mt=0))
    assert rows(ds, "SELECT ts_ns FROM events") == [(9223372036854775000,)]


def test_funcgraph_timestamp_past_int64_is_malformed(ingest_text):
    ds = ingest_text("""
        # tracer: function_graph
          441.670898 |   1)    bash-6300    |               |  /* mm_page_alloc: pfn=0x1 order=0 migratetype=0 gfp_flags=GFP_KERNEL */
          99999999999.670898 |   1)    bash-6300    |               |  /* mm_page_alloc: pfn=0x2 order=0 migratetype=0 gfp_flags=GFP_KERNEL */
        """)
    assert rows(ds, "SELECT pfn FROM events") == [(1,)]
    assert _meta(ds)["malformed"]["total"] == 1


def test_truncated_zstd_text_says_truncated(tmp_path, ftrace_text):
    z = zstandard.ZstdCompressor().compress(ftrace_text)
    for cut in (20, len(z) // 2):
        src = tmp_path / f"cut{cut}.txt.zst"
        src.write_bytes(z[:cut])
        err = one_line_error(run_cli("ingest", src, "-q", "-o", tmp_path / f"ds{cut}"))
        assert "zstd data does not decompress" in err and "truncated" in err, err
        assert "empty file" not in err
        assert not (tmp_path / f"ds{cut}").exists()


def test_errors_stay_on_one_line(tmp_path):
    bad = tmp_path / "evil\nname"
    bad.write_text("hello\n")
    err = one_line_error(run_cli("ingest", bad, "-q", "-o", tmp_path / "ds"))
    assert "evil\\nname" in err


def test_huge_shift_in_a_print_fmt_is_not_a_memory_error():
    # found by the 10^5-input campaign on perf-file (docs/fuzzing.md): a mutated gfp flag
    # value `1 << 1000000000000000000` made the evaluator allocate without bound
    from ingest.event_format import eval_c_constant

    assert eval_c_constant("1 << 1000000000000000000") == 0
    assert eval_c_constant("(1UL << 3) | 4") == 12
    assert eval_c_constant("1 << 63") == 1 << 63
