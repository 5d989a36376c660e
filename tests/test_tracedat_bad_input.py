"""Damaged trace.dat files: a one-line error naming file and offset (damaged headers, or any
damage with --strict), a corrupt sub-buffer counted malformed, or, for data cut short
mid-stream, the complete events flagged truncated. Never a traceback, never a hang."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ingest.base import IngestStats
from ingest.ringbuffer_spool import spool_events
from ingest.tracedat import TraceDatReader
from ingest.tracedat_file import read_layout
from ingest.errors import InputError
from tests.conftest import SAMPLES, run_cli
from tests.tracedat_samples import oracle, small_v6

V7 = SAMPLES / "ftrace-thp.dat"
# where things are in the v7 sample (`trace-cmd dump --options ftrace-thp.dat`)
V7_EVENT_FORMATS = 2063  # compressed section
V7_CPU0_DATA = 1142784  # compressed chunk stream
PAGE = 4096


def _refused(result: subprocess.CompletedProcess, path: Path, why: str, out: Path) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and why in lines[0], lines[0]
    assert not out.exists()
    return lines[0]


def _read(path: Path) -> tuple[dict[int, np.ndarray], IngestStats]:
    """(ts_ns, pid, pfn rows per CPU, stats) from the reader alone (no dataset written)."""
    stats = IngestStats()
    parts = [
        np.column_stack([b.column(c).to_numpy(zero_copy_only=False)
                         for c in ("cpu", "ts_ns", "pid", "pfn")])
        for b in TraceDatReader(path, stats).events()
    ]
    rows = np.concatenate(parts) if parts else np.zeros((0, 4))
    return {int(c): rows[rows[:, 0] == c][:, 1:] for c in np.unique(rows[:, 0])}, stats


@pytest.fixture(scope="module")
def v6(tmp_path_factory) -> tuple[bytes, int, dict[int, list[tuple]]]:
    """The small real v6 file, where its CPU data starts, and the oracle rows per CPU."""
    path = small_v6(tmp_path_factory.mktemp("v6") / "small.v6.dat")
    data = path.read_bytes()
    cpus = struct.unpack("<I", data[data.index(b"options  \0") - 4 :][:4])[0]
    assert cpus == 2
    first = data.index(b"flyrecord\0") + 10
    data_at = struct.unpack("<Q", data[first : first + 8])[0]
    rows = np.array([(cpu, ts, pid, np.nan if pfn is None else pfn)
                     for cpu, ts, pid, _comm, _event, pfn, *_ in oracle("v6")])
    expected = {int(c): rows[rows[:, 0] == c][:, 1:] for c in np.unique(rows[:, 0])}
    return data, data_at, expected


def test_wrong_magic(tmp_path):
    path = tmp_path / "bad.dat"
    path.write_bytes(b"\x17\x08\x44tracinG6\x00" + bytes(64))
    with pytest.raises(InputError, match="not a trace.dat file \\(bad magic\\)") as e:
        _read(path)
    assert str(e.value).startswith(f"{path}:offset 0:")


def test_unsupported_version(tmp_path):
    path = _corrupt(tmp_path, V7.read_bytes(), 10, b"9\x00")
    with pytest.raises(InputError, match="unsupported trace.dat version '9'") as e:
        _read(path)
    assert str(e.value).startswith(f"{path}:offset 10:")


@pytest.mark.parametrize("cut", [5, 11, 20, 36, 40, 200, 400, 2100, 60000, 124500,
                                 1138100, 1139040, 1139620])
def test_v7_truncated_in_headers(tmp_path, cut):
    """A cut before the CPU data (headers, formats, the first options): an error."""
    path = tmp_path / "cut.dat"
    path.write_bytes(V7.read_bytes()[:cut])
    with pytest.raises(InputError) as e:
        _read(path)
    assert str(e.value).startswith(f"{path}:offset ")


def test_v7_truncated_in_data_keeps_the_complete_events(tmp_path):
    """v7 keeps its buffer table after the CPU data; cut inside the data or that table,
    each CPU keeps the events of its whole chunks before the cut, as v6 does."""
    full, stats = _read(V7)
    assert not stats.truncated and set(full) == {0, 1}
    data = V7.read_bytes()
    path = tmp_path / "cut.dat"
    kept = {}
    for cut in [*range(V7_CPU0_DATA + 100, len(data), 9973), 1279380, 1279470]:
        path.write_bytes(data[:cut])
        got, stats = _read(path)
        assert stats.truncated, cut
        for cpu, rows in got.items():
            assert np.array_equal(rows, full[cpu][: len(rows)], equal_nan=True), (cut, cpu)
        kept[cut] = {c: len(r) for c, r in got.items()}
    assert kept[1279470] == {c: len(r) for c, r in full.items()}  # only the table was cut
    assert any(0 < n.get(1, 0) < len(full[1]) for n in kept.values())  # CPU 1 cut midway


def test_v7_truncated_on_cli(tmp_path):
    path = tmp_path / "cut.dat"
    path.write_bytes(V7.read_bytes()[:1250000])
    out = tmp_path / "out"
    result = run_cli("ingest", path, "-o", out, "-q", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "input is truncated" in result.stderr and "Traceback" not in result.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["truncated"] is True and 7304 < meta["events"] < 23864


def test_v6_truncated_in_headers(tmp_path, v6):
    data, data_at, _ = v6
    header_end = data.index(b"flyrecord\0") + 10 + 16 * 2
    for cut in range(1, header_end, 97):
        path = tmp_path / f"cut{cut}.dat"
        path.write_bytes(data[:cut])
        with pytest.raises(InputError) as e:
            _read(path)
        assert str(e.value).startswith(f"{path}:offset "), str(e.value)
        path.unlink()


def test_v6_truncated_at_every_page_boundary(tmp_path, v6):
    """Each CPU keeps exactly the events of its whole sub-buffers before the cut."""
    data, data_at, expected = v6
    path = tmp_path / "cut.dat"
    for cut in range(data_at, len(data) + 1, PAGE):
        path.write_bytes(data[:cut])
        got, stats = _read(path)
        assert stats.truncated == (cut < len(data)), cut
        for cpu, rows in got.items():
            assert np.array_equal(rows, expected[cpu][: len(rows)], equal_nan=True), (cut, cpu)
        if cut == len(data):
            assert {c: len(r) for c, r in got.items()} == {c: len(r) for c, r in expected.items()}


def test_v6_truncated_mid_page_on_cli(tmp_path, v6):
    data, data_at, expected = v6
    path = tmp_path / "cut.dat"
    cut = data_at + 100 * PAGE + 1234  # inside CPU 1's data, mid sub-buffer
    path.write_bytes(data[:cut])
    out = tmp_path / "out"
    result = run_cli("ingest", path, "-o", out, "-q", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "input is truncated" in result.stderr and "Traceback" not in result.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["truncated"] is True
    assert 0 < meta["events"] < sum(len(v) for v in expected.values())


def _corrupt(tmp_path, data: bytes, at: int, new: bytes) -> Path:
    path = tmp_path / "corrupt.dat"
    b = bytearray(data)
    b[at : at + len(new)] = new
    path.write_bytes(bytes(b))
    return path


def _without_pages(tmp_path, v6, cpu0_pages: tuple[int, int]) -> dict[int, np.ndarray]:
    """The sample's rows per CPU less CPU 0's sub-buffers [a, b): the rows a cut at each
    page boundary keeps (checked against the oracle above) tell which rows they hold."""
    data, data_at, expected = v6
    cut = tmp_path / "pages.dat"
    n = []
    for page in cpu0_pages:
        cut.write_bytes(data[: data_at + page * PAGE])
        n.append(len(_read(cut)[0].get(0, ())))
    cut.unlink()
    rows = dict(expected)
    rows[0] = np.concatenate([expected[0][: n[0]], expected[0][n[1]:]])
    assert n[0] < n[1]  # the damaged sub-buffers held events
    return rows


def _same_rows(got: dict[int, np.ndarray], want: dict[int, np.ndarray]) -> None:
    assert set(got) == set(want)
    for cpu, rows in want.items():
        assert np.array_equal(got[cpu], rows, equal_nan=True), cpu


def test_corrupt_page_header_with_strict_is_refused(tmp_path, v6):
    data, data_at, _ = v6
    at = data_at + 7 * PAGE + 8  # commit of the 8th sub-buffer
    path = _corrupt(tmp_path, data, at, struct.pack("<Q", 0x00FFFFFF))
    out = tmp_path / "out"
    line = _refused(run_cli("ingest", "--strict", path, "-o", out, timeout=120), path,
                    "CPU 0: sub-buffer commit size exceeds the sub-buffer", out)
    assert f":offset {at}:" in line


def test_corrupt_page_header_is_counted_and_its_cpu_goes_on(tmp_path, v6):
    """Without --strict a corrupt sub-buffer is counted malformed, as a bad text line is:
    the CPU loses that sub-buffer's events only."""
    data, data_at, _ = v6
    at = data_at + 7 * PAGE + 8
    path = _corrupt(tmp_path, data, at, struct.pack("<Q", 0x00FFFFFF))
    got, stats = _read(path)
    _same_rows(got, _without_pages(tmp_path, v6, (7, 8)))
    example = f"offset {at}: CPU 0: sub-buffer commit size exceeds the sub-buffer"
    assert (stats.malformed, stats.malformed_examples, stats.truncated) == (1, [example], False)
    out = tmp_path / "out"
    result = run_cli("ingest", path, "-o", out, "-q", timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "1 malformed" in result.stderr and example in result.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["malformed"] == {"total": 1, "examples": [example]}


@pytest.mark.parametrize("length, why", [(2, "impossible length"),
                                         (0x10000, "runs past the sub-buffer's commit")])
def test_corrupt_event_length(tmp_path, v6, length, why):
    data, data_at, _ = v6
    at = data_at + 3 * PAGE + 16  # first event header of the 4th sub-buffer
    path = _corrupt(tmp_path, data, at, struct.pack("<II", 0, length))  # type_len 0
    with pytest.raises(InputError, match=why) as e:
        list(TraceDatReader(path, IngestStats(), strict=True).events())
    assert f":offset {at}:" in str(e.value)
    got, stats = _read(path)  # the sub-buffer's records from the fault on are lost
    _same_rows(got, _without_pages(tmp_path, v6, (3, 4)))
    assert stats.malformed == 1 and stats.malformed_examples[0].startswith(
        f"offset {at}: CPU 0: event record")


def test_a_recording_spool_follows_the_same_rule(tmp_path, v6):
    """The same damaged sub-buffer in a `replay record` spool (whole sub-buffers, as
    trace.dat CPU data): the same events kept, the same count."""
    data, data_at, _ = v6
    at = data_at + 7 * PAGE + 8
    path = _corrupt(tmp_path, data, at, struct.pack("<Q", 0x00FFFFFF))
    layout = read_layout(path)
    spools = {}
    for d in layout.buffers[""].cpus:
        spools[d.cpu] = tmp_path / f"cpu{d.cpu}.spool"
        spools[d.cpu].write_bytes(path.read_bytes()[d.offset : d.offset + d.size])
    stats = IngestStats()
    table = pa.Table.from_batches(list(spool_events(
        spools, layout.formats, layout.header_page, {}, stats)))
    rows = np.column_stack([table.column(c).to_numpy(zero_copy_only=False)
                            for c in ("cpu", "ts_ns", "pid", "pfn")])
    got = {int(c): rows[rows[:, 0] == c][:, 1:] for c in np.unique(rows[:, 0])}
    _same_rows(got, _read(path)[0])
    assert stats.malformed == 1
    assert stats.malformed_examples == [
        f"byte {7 * PAGE + 8}: CPU 0: sub-buffer commit size exceeds the sub-buffer"]


def test_section_that_does_not_decompress(tmp_path):
    at = V7_EVENT_FORMATS + 16 + 8  # the zstd frame of the event formats section
    path = _corrupt(tmp_path, V7.read_bytes(), at, b"\0\0\0\0")
    out = tmp_path / "out"
    line = _refused(run_cli("ingest", path, "-o", out, timeout=120), path,
                    "zstd data does not decompress", out)
    assert f":offset {V7_EVENT_FORMATS + 16}:" in line


def test_cpu_chunk_that_does_not_decompress(tmp_path):
    path = _corrupt(tmp_path, V7.read_bytes(), V7_CPU0_DATA + 4 + 8, b"\0\0\0\0")
    with pytest.raises(InputError, match="CPU 0 data chunk 0: zstd data does not") as e:
        _read(path)
    assert f":offset {V7_CPU0_DATA + 4}:" in str(e.value)


def test_garbage_that_decompresses(tmp_path):
    """zstd frames carry no checksum here: damage inflates to garbage, caught by the walk."""
    path = _corrupt(tmp_path, V7.read_bytes(), V7_CPU0_DATA + 4 + 8 + 300, bytes(64))
    with pytest.raises(InputError, match="CPU 0: event record") as e:
        list(TraceDatReader(path, IngestStats(), strict=True).events())
    chunk = f"compressed chunk at offset {V7_CPU0_DATA + 4})"
    assert chunk in str(e.value)
    full, _ = _read(V7)
    got, stats = _read(path)
    assert stats.malformed >= 1 and chunk in stats.malformed_examples[0]
    assert np.array_equal(got[1], full[1], equal_nan=True)
    assert 0 < len(got[0]) < len(full[0])


def test_lost_events_are_counted(tmp_path, v6):
    """Sub-buffer missed-events flags: a stored count, and a loss of unknown size."""
    data, data_at, expected = v6
    b = bytearray(data)
    pages = [data_at + i * PAGE for i in range((len(data) - data_at) // PAGE)]
    commit = {p: struct.unpack_from("<Q", b, p + 8)[0] for p in pages}
    counted = next(p for p in pages[1:60] if 16 + commit[p] + 8 <= PAGE)  # room for a count
    struct.pack_into("<Q", b, counted + 8, commit[counted] | 3 << 30)
    struct.pack_into("<Q", b, counted + 16 + commit[counted], 1234)
    cpu1_page = pages[-3]
    struct.pack_into("<Q", b, cpu1_page + 8, commit[cpu1_page] | 1 << 31)
    path = tmp_path / "lost.dat"
    path.write_bytes(bytes(b))
    got, stats = _read(path)
    assert dict(stats.lost_events) == {0: 1234}
    assert stats.lost_unknown == {1}
    assert {c: len(r) for c, r in got.items()} == {c: len(r) for c, r in expected.items()}
    out = tmp_path / "out"
    result = run_cli("ingest", path, "-o", out, "-q", timeout=120)
    assert result.returncode == 0 and "1234 events lost (CPUs [0, 1])" in result.stderr
    meta = json.loads((out / "meta.json").read_text())["lost_events"]
    assert meta == {"total": 1234, "per_cpu": {"0": 1234}, "unknown_count_cpus": [1]}
