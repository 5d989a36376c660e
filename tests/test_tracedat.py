"""trace.dat (v6, v7) ingest: every event equals `trace-cmd report -t` on real samples."""

from __future__ import annotations

import json
import lzma
from collections import Counter
import shutil
import subprocess

import pytest

from ingest.errors import InputError
from replay.ingestion import ingest
from tests.conftest import SAMPLES, run_cli
from tests.tracedat_samples import (
    SAMPLE_PAIRS,
    dataset_rows,
    oracle,
    report_rows,
    small_v6,
    v7_zlib,
)


@pytest.mark.parametrize("name", list(SAMPLE_PAIRS))
def test_every_event_matches_trace_cmd_report(tmp_path, name):
    trace = SAMPLES / SAMPLE_PAIRS[name][0]
    got = dataset_rows(ingest(trace, tmp_path / "ds", quiet=True))
    expected = oracle(name)
    assert len(expected) == 23864
    assert len(got) == len(expected)
    mismatched = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got)) if e != g]
    assert not mismatched, mismatched[:3]


def test_zlib_compressed_v7(tmp_path):
    trace = v7_zlib(tmp_path / "zlib.dat")
    out = ingest(trace, tmp_path / "ds", quiet=True)
    assert json.loads((out / "meta.json").read_text())["trace_dat"]["compression"] == "zlib"
    assert dataset_rows(out) == oracle("v7-none")


def test_meta_describes_the_trace(tmp_path):
    out = ingest(SAMPLES / "ftrace-thp.dat", tmp_path / "ds", quiet=True)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["format"] == "trace.dat"
    assert meta["format_version"] == "7"
    assert (meta["page_size"], meta["cpus"], meta["clock"]) == (4096, 2, "local")
    assert meta["kernel_release"] == "6.18.44-fc-v782"
    assert meta["truncated"] is False
    assert meta["lost_events"]["total"] == 0
    assert meta["skipped"]["total"] == 0
    assert meta["trace_dat"]["compression"] == "zstd"
    counts = Counter(r[4] for r in oracle("v7-zstd"))
    assert meta["event_counts"] == dict(sorted(counts.items()))


def test_small_v6_keeps_every_event(tmp_path):
    """The reduced v6 used by the truncation tests still decodes to the full oracle."""
    trace = small_v6(tmp_path / "small.v6.dat")
    assert trace.stat().st_size < 1 << 20
    assert dataset_rows(ingest(trace, tmp_path / "ds", quiet=True)) == oracle("v6")


@pytest.mark.parametrize("name", ["ftrace-instance.dat", "ftrace-instance.v6.dat.xz"])
def test_instance_buffer_with_lost_events(tmp_path, name):
    """A real instance buffer whose ring buffer overflowed on CPU 0, as extracted (v7) and
    converted to v6 (whose `trace-cmd report -t` is byte for byte the v7 file's)."""
    trace = SAMPLES / name
    with pytest.raises(InputError, match="top-instance buffer holds no data; use --buffer "
                                         "with one of: replaytest"):
        ingest(trace, tmp_path / "top", quiet=True)
    out = ingest(trace, tmp_path / "ds", quiet=True, buffer="replaytest")
    text = lzma.open(SAMPLES / "ftrace-instance.report-t.txt.xz", "rt").read()
    expected = report_rows(text, buffer="replaytest")
    assert len(expected) == 107452
    assert dataset_rows(out) == expected
    assert "replaytest: CPU:0 [7242 EVENTS DROPPED]" in text
    meta = json.loads((out / "meta.json").read_text())
    assert meta["lost_events"] == {"total": 7242, "per_cpu": {"0": 7242},
                                   "unknown_count_cpus": []}
    assert meta["trace_dat"]["buffer"] == "replaytest"


def test_unknown_buffer_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"no buffer 'nope' in this trace.dat \(buffers: ''"):
        ingest(SAMPLES / "ftrace-thp.dat", tmp_path / "ds", quiet=True, buffer="nope")


def test_buffer_option_on_cli(tmp_path):
    out = tmp_path / "ds"
    r = run_cli("ingest", SAMPLES / "ftrace-thp.dat", "-o", out, "-q", "--buffer", "other")
    assert r.returncode == 1 and "no buffer 'other'" in r.stderr and not out.exists()
    r = run_cli("ingest", SAMPLES / "ftrace-thp.trace.txt.xz", "-o", out, "--buffer", "x")
    assert r.returncode == 1 and "--buffer does not apply to ftrace input" in r.stderr


@pytest.mark.skipif(shutil.which("trace-cmd") is None, reason="trace-cmd is not installed")
def test_live_trace_cmd_agrees(tmp_path):
    """Runs the installed trace-cmd on the v7 sample (the committed oracle could be stale)."""
    report = subprocess.run(["trace-cmd", "report", "-t", "-i", str(SAMPLES / "ftrace-thp.dat")],
                            capture_output=True, text=True, check=True).stdout
    got = dataset_rows(ingest(SAMPLES / "ftrace-thp.dat", tmp_path / "ds", quiet=True))
    assert got == report_rows(report)
