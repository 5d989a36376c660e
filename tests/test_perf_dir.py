"""`perf record --threads` output: a directory of DIR/data and DIR/data.N files.

The committed sample's files are xz-compressed in place (names kept); its samples and
frames are compared with perf script in test_perf_data.py. Here: what the reader counts,
damaged and odd directories, and perf run live on the uncompressed directory.
"""

from __future__ import annotations

import lzma
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from replay.dataset import read_meta
from ingest.errors import InputError
from replay.ingestion import ingest
from tests.conftest import SAMPLES, run_cli
from tests.test_perf_bad_input import SAMPLE_ID, records
from tests.test_perf_data import by_time_cpu, expected_samples, got_samples

DIR = SAMPLES / "perf-threads.perf.data"
SAMPLES_N = 12196  # perf report --stats: SAMPLE events
HANG = 600  # seconds: only a guard against a hang


def plain_copy(dest: Path) -> Path:
    """The sample directory with its files decompressed (as perf wrote them)."""
    dest.mkdir()
    for f in DIR.iterdir():
        (dest / f.name).write_bytes(lzma.decompress(f.read_bytes()))
    return dest


def first_sample(data: bytes, nth: int) -> int:
    """Offset of the nth SAMPLE record of a data.N file (records from offset 0)."""
    return [pos for pos, rtype, _ in records(data, 0, len(data)) if rtype == SAMPLE_ID][nth]


def test_meta_counts_the_files(tmp_path):
    ds = ingest(DIR, tmp_path / "t.replay", quiet=True)
    meta = read_meta(ds)
    assert meta["events"] == SAMPLES_N and meta["truncated"] is False
    assert meta["perf"]["data_files"] == 3
    assert meta["perf"]["records_by_type"]["9"] == SAMPLES_N
    assert meta["perf"]["finished_rounds"] == 0  # perf's threads write none
    assert meta["source"]["size"] == sum(f.stat().st_size for f in DIR.iterdir())
    ts = [r[1] for r in got_samples(ds)]
    assert ts == sorted(ts)  # the files' records merged in time order


def test_truncated_part_is_flagged(tmp_path):
    d = plain_copy(tmp_path / "cut.perf.data")
    part = (d / "data.1").read_bytes()
    (d / "data.1").write_bytes(part[: len(part) // 2 + 3])
    meta = read_meta(ingest(d, tmp_path / "out", quiet=True))
    assert meta["truncated"] is True
    assert SAMPLES_N // 2 < meta["events"] < SAMPLES_N


def test_damaged_part_names_the_file(tmp_path):
    d = plain_copy(tmp_path / "bad.perf.data")
    data = bytearray((d / "data.0").read_bytes())
    off = first_sample(bytes(data), 100)
    struct.pack_into("<H", data, off + 6, 0)  # record size 0: the walk cannot go on
    (d / "data.0").write_bytes(bytes(data))
    meta = read_meta(ingest(d, tmp_path / "partial", quiet=True))
    assert meta["truncated"] is True
    assert meta["malformed"]["examples"][0].startswith(f"data.0 offset {off}")
    res = run_cli("ingest", d, "-o", tmp_path / "strict", "--strict", timeout=HANG)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert f"data.0 offset {off}" in res.stderr and str(d) in res.stderr
    assert not (tmp_path / "strict").exists()


def test_directories_that_are_not_perf_data(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="without a `data` file"):
        ingest(empty, tmp_path / "o1", quiet=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "data").write_text("hello\n")
    res = run_cli("ingest", other, "-o", tmp_path / "o2", timeout=HANG)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and str(other) in res.stderr
    assert not (tmp_path / "o2").exists()
    d = plain_copy(tmp_path / "emptypart.perf.data")
    (d / "data").write_bytes(b"")
    with pytest.raises(InputError, match="data: empty file"):
        ingest(d, tmp_path / "o3", quiet=True)


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed")
def test_live_perf_script(tmp_path):
    d = plain_copy(tmp_path / "live.perf.data")
    out = subprocess.run(["perf", "script", "-i", str(d), "-F", "comm,tid,cpu,time,event,trace",
                          "--ns"], capture_output=True, text=True, check=True)
    expected = expected_samples(out.stdout.splitlines())
    got = got_samples(ingest(d, tmp_path / "live.replay", quiet=True))
    assert len(expected) == SAMPLES_N
    assert by_time_cpu(got, got) == by_time_cpu(expected, expected)
