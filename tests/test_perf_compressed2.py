"""PERF_RECORD_COMPRESSED2 (type 83, perf since 2025): the real `perf record -z` sample rewritten.

perf 6.1 here writes COMPRESSED (81) records: header, then the zstd data up to header.size.
Newer perf writes COMPRESSED2 (tools/lib/perf/include/perf/event.h, commit "perf record:
Add 8-byte aligned event type PERF_RECORD_COMPRESSED2", 2025): header, u64 data_size, the
data, zero padding up to header.size, a multiple of 8. Each of perf-z's COMPRESSED records
is rewritten so, with the data section size and the feature offsets after it moved by
what the records grew; the dataset must not change.
"""

from __future__ import annotations

import struct
from pathlib import Path

import duckdb
import pytest

from replay.dataset import read_meta
from ingest.errors import InputError
from replay.ingestion import ingest
from tests.conftest import SAMPLES

SOURCE = SAMPLES / "perf-z.perf.data"
COMPRESSED, COMPRESSED2 = 81, 83


def as_compressed2(data: bytes, bad_size: bool = False) -> tuple[bytes, int, int]:
    """`data` with every COMPRESSED record as COMPRESSED2; also (records rewritten, offset
    of the first). `bad_size`: that first record's data_size claims 8 bytes too many."""
    d_off, d_size = struct.unpack_from("<QQ", data, 40)
    bits = struct.unpack_from("<4Q", data, 72)
    n_features = sum(bin(b).count("1") for b in bits)
    out, pos, n, first = bytearray(), d_off, 0, -1
    while pos < d_off + d_size:
        rtype, misc, size = struct.unpack_from("<IHH", data, pos)
        if rtype != COMPRESSED:
            out += data[pos : pos + size]
        else:
            payload = data[pos + 8 : pos + size]
            new_size = (16 + len(payload) + 7) // 8 * 8
            assert new_size < 1 << 16, "would not fit a record; the test needs another file"
            if first < 0:
                first = d_off + len(out)
            claimed = len(payload) + (8 if bad_size and n == 0 else 0)
            out += struct.pack("<IHHQ", COMPRESSED2, misc, new_size, claimed) + payload
            out += bytes(new_size - 16 - len(payload))
            n += 1
        pos += size
    grow = len(out) - d_size
    head = bytearray(data[:d_off])
    struct.pack_into("<Q", head, 48, len(out))
    rest = bytearray(data[d_off + d_size :])
    for i in range(n_features):  # the feature section table: (offset, size) each
        (off,) = struct.unpack_from("<Q", rest, 16 * i)
        struct.pack_into("<Q", rest, 16 * i, off + grow)
    return bytes(head + out + rest), n, first


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("z2")
    data, n, _ = as_compressed2(SOURCE.read_bytes())
    assert n == 60  # perf report --stats of perf-z: 60 COMPRESSED records
    (tmp / "z2.perf.data").write_bytes(data)
    return (ingest(SOURCE, tmp / "z.replay", quiet=True),
            ingest(tmp / "z2.perf.data", tmp / "z2.replay", quiet=True))


def test_compressed2_gives_the_same_dataset(pair):
    orig, new = pair
    for table in ("events", "stacks"):
        a = duckdb.sql(f"SELECT * FROM '{orig}/{table}.parquet'").fetchall()
        b = duckdb.sql(f"SELECT * FROM '{new}/{table}.parquet'").fetchall()
        assert a == b and len(a) > 10000
    meta, meta2 = read_meta(orig), read_meta(new)
    assert meta2["events"] == meta["events"] == 17146
    assert meta2["truncated"] is False and meta2["malformed"]["total"] == 0
    types = meta2["perf"]["records_by_type"]
    assert types["83"] == 60 and "81" not in types
    assert meta["perf"]["records_by_type"]["81"] == 60


def test_compressed2_data_size_past_its_record(tmp_path):
    data, _, first = as_compressed2(SOURCE.read_bytes(), bad_size=True)
    path = tmp_path / "bad.perf.data"
    path.write_bytes(data)
    with pytest.raises(InputError) as err:
        ingest(path, tmp_path / "out", quiet=True)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    assert f"offset {first}" in msg and "COMPRESSED2" in msg
    assert not (tmp_path / "out").exists()


def test_compressed2_record_too_short_for_its_data_size(tmp_path):
    """A COMPRESSED2 header of 8 bytes has no room for its u64 data_size (found by the
    perf-dir-z fuzz campaign: a struct.error traceback): a one-line error naming it."""
    data, _, first = as_compressed2(SOURCE.read_bytes())
    data = bytearray(data)
    struct.pack_into("<H", data, first + 6, 8)
    path = tmp_path / "short.perf.data"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"offset {first}.*COMPRESSED2 record too short"):
        ingest(path, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()
