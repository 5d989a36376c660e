"""Damaged perf.data: a one-line error or a dataset flagged partial, never a traceback.

Real samples are truncated at many offsets, their record sizes, record types and event
attributes are corrupted, and random bytes are flipped; every outcome must be either an
`InputError` (the CLI prints it as one line) or a dataset whose meta.json says what was
lost. A few cases run through the CLI in a subprocess (with a timeout guarding against a
hang) to check the one-line message and that nothing is left behind.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from replay.dataset import read_meta
from ingest.errors import InputError
from replay.ingestion import ingest
from tests.conftest import SAMPLES, run_cli

FILE = SAMPLES / "perf-g.perf.data"  # seekable layout, callchains
PIPE = SAMPLES / "perf-pipe.perf-pipe.data"  # pipe layout
FILE_SAMPLES, PIPE_SAMPLES = 7327, 11225
SAMPLE_ID = 9
HANG = 600  # seconds: only a guard against a hang, far above any normal run


def records(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(offset, type, size) of the records from `start`, read independently of the reader."""
    out, pos = [], start
    while pos + 8 <= end:
        rtype, _, size = struct.unpack_from("<IHH", data, pos)
        out.append((pos, rtype, size))
        if rtype == 66:  # pipe-mode tracing data: the blob follows, outside the size
            size += struct.unpack_from("<I", data, pos + 8)[0]
        pos += size
    return out


def data_section(data: bytes) -> tuple[int, int]:
    if struct.unpack_from("<Q", data, 8)[0] == 16:
        return 16, len(data)
    off, size = struct.unpack_from("<QQ", data, 40)
    return off, off + size


def outcome(tmp_path: Path, data: bytes, name: str = "bad.perf.data") -> tuple[str, object]:
    """("error", message) or ("ok", meta) of ingesting `data`; any other exception fails."""
    src = tmp_path / name
    src.write_bytes(data)
    out = tmp_path / (name + ".replay")
    try:
        ds = ingest(src, out, quiet=True, force=True, fmt="perf.data")
    except InputError as e:
        assert "\n" not in str(e) and str(src) in str(e)
        assert not out.exists()
        return "error", str(e)
    return "ok", read_meta(ds)


def test_wrong_magic(tmp_path):
    data = b"PERFFILE" + FILE.read_bytes()[8:]
    kind, why = outcome(tmp_path, data)
    assert kind == "error" and "bad magic" in why and "offset 0" in why
    path = tmp_path / "magic.data"
    path.write_bytes(data)
    out = tmp_path / "out"
    res = run_cli("ingest", path, "-o", out, timeout=HANG)  # refused by sniffing already
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and str(path) in res.stderr
    assert not out.exists()


def test_file_truncated_at_many_offsets(tmp_path):
    """Seekable layout: the formats sit after the data, so a cut there is an error."""
    data = FILE.read_bytes()
    start, end = data_section(data)
    tracing_off, tracing_size = struct.unpack_from("<QQ", data, end)  # first feature
    tracing_end = tracing_off + tracing_size
    cuts = [0, 7, 8, 15, 16, 50, 103, 104, 200, start - 1, start, start + 5, end - 3, end,
            end + 100, tracing_off + 5000, tracing_end + 50, len(data) - 40]
    cuts += [start + k * (end - start) // 9 for k in range(1, 9)]
    for cut in cuts:
        kind, got = outcome(tmp_path, data[:cut], f"cut{cut}.data")
        if cut < tracing_end:
            assert kind == "error", (cut, got)
            if cut >= start:
                assert "event formats" in got and "missing" in got, got
        else:  # only feature sections after the tracing data are lost
            assert kind == "ok" and got["truncated"] is True and got["events"] == FILE_SAMPLES


def test_pipe_truncated_at_many_offsets(tmp_path):
    """Pipe layout: everything before the cut is kept and the dataset says truncated."""
    data = PIPE.read_bytes()
    recs = records(data, 16, len(data))
    first_sample = next(off for off, t, _ in recs if t == SAMPLE_ID)
    cuts = [off + 3 for off, t, _ in recs[:12]]  # inside attrs, tracing data, features
    cuts += [first_sample + k * (len(data) - first_sample) // 12 + 1 for k in range(1, 12)]
    last = 0
    for cut in cuts:
        kind, got = outcome(tmp_path, data[:cut], f"cut{cut}.data")
        if kind == "error":
            assert cut < first_sample + len(data) // 12, (cut, got)
            continue
        assert got["truncated"] is True, cut
        assert last <= got["events"] < PIPE_SAMPLES
        last = got["events"]
    assert last > PIPE_SAMPLES // 2


@pytest.mark.parametrize("size", [0, 4, 7, 0xFFFF, 24])
def test_corrupt_record_size(tmp_path, size):
    """A sample whose size field lies: the walk stops or resynchronizes, flagged."""
    data = bytearray(PIPE.read_bytes())
    recs = [r for r in records(bytes(data), 16, len(data)) if r[1] == SAMPLE_ID]
    off = recs[len(recs) // 2][0]
    struct.pack_into("<H", data, off + 6, size)
    kind, got = outcome(tmp_path, bytes(data))
    if kind == "error":
        return
    if size < 8:
        assert got["truncated"] is True
        assert "size" in got["malformed"]["examples"][0]
        assert PIPE_SAMPLES // 3 < got["events"] < PIPE_SAMPLES
    else:
        assert got["events"] < PIPE_SAMPLES
        assert got["truncated"] or got["malformed"]["total"] or got["skipped"]["total"] \
            or got["perf"]["records_by_type"].get("255") or got["events"] < PIPE_SAMPLES


def test_corrupt_size_partial_or_strict_error(tmp_path, capsys):
    """Without --strict: a partial dataset and a warning; with it: one line, nothing kept."""
    data = bytearray(PIPE.read_bytes())
    off = [r for r in records(bytes(data), 16, len(data)) if r[1] == SAMPLE_ID][100][0]
    struct.pack_into("<H", data, off + 6, 0)
    path = tmp_path / "zero-size.data"
    path.write_bytes(bytes(data))
    ds = ingest(path, tmp_path / "out", quiet=True)
    assert read_meta(ds)["truncated"] is True
    assert "input is truncated" in capsys.readouterr().err  # the warning says it is partial
    res = run_cli("ingest", path, "-o", tmp_path / "strict", "--strict", timeout=HANG)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and f"offset {off}" in res.stderr
    assert not (tmp_path / "strict").exists()


def test_unknown_record_types_are_skipped(tmp_path):
    data = bytearray(FILE.read_bytes())
    start, end = data_section(bytes(data))
    recs = records(bytes(data), start, end)
    sample = next(off for off, t, _ in recs if t == SAMPLE_ID)
    comm = next(off for off, t, _ in recs if t == 3)
    struct.pack_into("<I", data, sample, 4000)
    struct.pack_into("<I", data, comm, 199)
    kind, meta = outcome(tmp_path, bytes(data))
    assert kind == "ok" and meta["events"] == FILE_SAMPLES - 1
    assert meta["perf"]["records_by_type"]["199"] == 1
    assert meta["perf"]["records_by_type"]["255"] == 1  # every type >= 255
    assert meta["truncated"] is False


def _attr_offsets(data: bytes) -> list[int]:
    attr_size, off, size = struct.unpack_from("<QQQ", data, 16)
    return list(range(off, off + size, attr_size))


def test_attr_layouts_that_cannot_be_decoded(tmp_path):
    data = FILE.read_bytes()
    attrs = _attr_offsets(data)
    # one event without SAMPLE_IDENTIFIER: samples can no longer be told apart
    d = bytearray(data)
    st = struct.unpack_from("<Q", d, attrs[1] + 24)[0]
    struct.pack_into("<Q", d, attrs[1] + 24, st & ~(1 << 16))
    kind, why = outcome(tmp_path, bytes(d), "noident.data")
    assert kind == "error" and "cannot tell which event" in why
    # a kmem event without RAW: nothing to decode its fields from
    d = bytearray(data)
    struct.pack_into("<Q", d, attrs[0] + 24, st & ~(1 << 10))
    kind, why = outcome(tmp_path, bytes(d), "noraw.data")
    assert kind == "error" and "without raw data" in why and "mm_page_alloc" in why
    # an attribute size that does not fit its slot
    d = bytearray(data)
    struct.pack_into("<I", d, attrs[2] + 4, 5000)
    kind, why = outcome(tmp_path, bytes(d), "attrsize.data")
    assert kind == "error" and "attribute size 5000" in why
    # an attrs section pointing past the end of the file
    d = bytearray(data)
    struct.pack_into("<Q", d, 24, len(data))
    kind, why = outcome(tmp_path, bytes(d), "attrsection.data")
    assert kind == "error" and "attrs section" in why


def test_damaged_tracing_data(tmp_path):
    data = bytearray(FILE.read_bytes())
    start, end = data_section(bytes(data))
    tracing_off = struct.unpack_from("<Q", data, end)[0]  # first feature: tracing data
    data[tracing_off : tracing_off + 3] = b"XYZ"
    kind, why = outcome(tmp_path, bytes(data))
    assert kind == "error" and "tracing data" in why and "bad magic" in why


def test_random_byte_flips(tmp_path):
    """Garbage anywhere in the records: an error or a dataset, nothing else."""
    clean = PIPE.read_bytes()
    rng = random.Random(4)
    for trial in range(12):
        data = bytearray(clean)
        for _ in range(20):
            at = rng.randrange(16, len(data))
            data[at] = rng.randrange(256)
        kind, got = outcome(tmp_path, bytes(data), f"flip{trial}.data")
        if kind == "ok":
            assert got["events"] <= PIPE_SAMPLES


def test_lost_records_counted_per_cpu(tmp_path):
    """LOST and LOST_SAMPLES counts land in meta.json under the CPU of their sample id.

    No capture here lost anything, so two real COMM records (with their sample_id_all
    trailer: tid, time, cpu, identifier) are rewritten into a LOST and a LOST_SAMPLES."""
    data = bytearray(PIPE.read_bytes())
    timed = [(off, size) for off, t, size in records(bytes(data), 16, len(data))
             if t == 3 and struct.unpack_from("<Q", data, off + size - 24)[0] > 0]
    (a, a_size), (b, b_size) = timed[0], timed[-1]
    struct.pack_into("<I", data, a, 2)  # PERF_RECORD_LOST: u64 id, u64 lost, trailer
    struct.pack_into("<Q", data, a + 16, 1234)
    struct.pack_into("<I", data, b, 13)  # PERF_RECORD_LOST_SAMPLES: u64 lost, trailer
    struct.pack_into("<Q", data, b + 8, 77)
    cpu_a = struct.unpack_from("<I", data, a + a_size - 16)[0]
    cpu_b = struct.unpack_from("<I", data, b + b_size - 16)[0]
    kind, meta = outcome(tmp_path, bytes(data))
    assert kind == "ok" and meta["events"] == PIPE_SAMPLES
    expected: dict[str, int] = {}
    for cpu, n in ((cpu_a, 1234), (cpu_b, 77)):
        expected[str(cpu)] = expected.get(str(cpu), 0) + n
    assert meta["lost_events"]["per_cpu"] == expected
    assert meta["lost_events"]["total"] == 1234 + 77
