"""The engine's compact memory: the stream's narrow dtypes keep every value of a real
trace, refuse pfns they cannot hold, and the chosen-rows reader returns what reading
whole columns and taking the rows returns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.errors import InputError
from replay.dataset import EVENTS_FILE, read_meta, recorded_events
from replay.engine.layout import ZONE_INDEX, Layout
from replay.engine.rows import take_rows
from replay.engine.stream import (
    ALLOC,
    PFN_LIMIT,
    TAKE,
    build_stream,
    check_pfns,
    entry_dtypes,
    load_stream,
)
from replay.kernel.procfs import ZoneInfo
from replay.kernel.release import parse_release
from tests.conftest import SAMPLES

DATASET = SAMPLES / "record-kpageflags-6.18"
COLUMNS = ["seq", "ts_ns", "pid", "comm", "gfp_flags", "stack_id"]


def test_a_real_stream_is_compact_and_keeps_the_traced_values():
    """Every pfn, order and timestamp of the stream is the traced row's (read back from
    events.parquet by the stream's row numbers), in the narrow dtypes."""
    meta = read_meta(DATASET)
    s = load_stream(DATASET, parse_release(meta.get("kernel_release")), recorded_events(meta))
    assert (s.kind.dtype, s.pfn.dtype, s.order.dtype, s.migratetype.dtype,
            s.zone_type.dtype, s.pclass.dtype, s.folio.dtype, s.ts_ns.dtype,
            s.row.dtype) == tuple(np.dtype(t) for t in entry_dtypes(s.events))
    ev = pq.read_table(DATASET / EVENTS_FILE, columns=["pfn", "order", "ts_ns"])
    placed = s.pfn >= 0
    rows = s.row[placed]
    assert (ev.column("pfn").to_numpy()[rows] == s.pfn[placed]).all()
    assert (ev.column("order").to_numpy()[rows] == s.order[placed]).all()
    assert (ev.column("ts_ns").to_numpy()[s.row] == s.ts_ns).all()


def test_a_block_past_the_32_bit_page_numbers_is_refused():
    a = lambda *x: np.array(x, np.int64)  # noqa: E731
    args = (a(0, 0), a(0, 0), a(0, 0), np.zeros(2, np.uint8), np.zeros(2, bool), a(0, 1),
            a(0, 1), None)
    last = PFN_LIMIT - 2  # an order-1 block ending at the limit fits
    check_pfns(a(last), a(1), "stream")  # (a stream there would index 2^31 pages: 2.5 GB)
    with pytest.raises(InputError, match="32-bit"):
        check_pfns(a(last + 1), a(1), "stream")
    with pytest.raises(InputError, match="32-bit"):  # refused before any per-page array
        build_stream(np.array([TAKE, ALLOC], np.int8), a(last + 1, last + 1), a(1, 1),
                     *args)


def test_zone_index_is_the_zone_holding_each_pfn():
    """Against a plain loop over the zones, with a hole between them and pfns outside."""
    zones = (ZoneInfo(0, "DMA", 1, 4095, 4095, 3840, 0, 0, 0, 0),
             ZoneInfo(0, "Normal", 8192, 4096, 4096, 4096, 0, 0, 0, 0))
    layout = Layout(zones, "test")
    pfn = np.array([-1, 0, 1, 4095, 4096, 8191, 8192, 12287, 12288, 1 << 30], np.int32)
    want = [next((i for i, z in enumerate(zones) if z.start_pfn <= p < z.end_pfn), -1)
            for p in pfn.tolist()]
    got = layout.zone_of(pfn, ZONE_INDEX)
    assert got.dtype == ZONE_INDEX and got.tolist() == want == [-1, -1, 0, 0, -1, -1, 1, 1,
                                                                 -1, -1]


def test_take_rows_is_read_then_take(tmp_path):
    """On the real events of a recording rewritten in small row groups: any rows, sorted
    or not, repeated or not, none; rows past the end are an error."""
    path = tmp_path / EVENTS_FILE
    pq.write_table(pq.read_table(DATASET / EVENTS_FILE), path, row_group_size=10_000)
    n = pq.read_metadata(path).num_rows
    assert pq.ParquetFile(path).metadata.num_row_groups > 5
    rng = np.random.default_rng(7)
    for rows in (np.unique(rng.integers(0, n, 5000)), rng.integers(0, n, 300),
                 np.array([n - 1, 0, n - 1]), np.zeros(0, np.int64)):
        want = pq.read_table(path, columns=COLUMNS).take(pa.array(rows)).combine_chunks()
        got = take_rows(path, COLUMNS, rows)
        assert got.schema == want.schema and got.to_pylist() == want.to_pylist()
    with pytest.raises(IndexError):
        take_rows(path, COLUMNS, np.array([0, n]))
