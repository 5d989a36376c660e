"""Counting malformed records: every reader counts them all and quotes the first
MALFORMED_EXAMPLES, through `IngestStats.add_malformed` / `add_malformed_many`."""

from __future__ import annotations

import numpy as np

from ingest.base import MALFORMED_EXAMPLES, IngestStats
from ingest.ftrace_entry import EntryDecoder
from ingest.ringbuffer import decode_subbuffers
from ingest.tracedat_file import read_layout
from tests.tracedat_samples import small_v6


def _pulled(n: int, log: list[int]):
    for i in range(n):
        log.append(i)
        yield f"at {i}", f"why {i}"


def test_many_counts_all_and_quotes_what_room_is_left_lazily():
    stats = IngestStats()
    stats.add_malformed("line 1", "x" * 300)
    stats.add_malformed("line 2", "y")
    log: list[int] = []
    stats.add_malformed_many(10, _pulled(10, log))
    assert stats.malformed == 12
    assert log == [0, 1, 2]  # only what was quoted was produced
    assert stats.malformed_examples == ["line 1: " + "x" * 200, "line 2: y",
                                        "at 0: why 0", "at 1: why 1", "at 2: why 2"]
    log.clear()
    stats.add_malformed_many(4, _pulled(4, log))
    stats.add_malformed("line 9", "z")
    assert stats.malformed == 17 and log == []
    assert len(stats.malformed_examples) == MALFORMED_EXAMPLES


def test_many_with_nothing_bad_changes_nothing():
    stats = IngestStats()
    log: list[int] = []
    stats.add_malformed_many(0, _pulled(3, log))
    assert (stats.malformed, stats.malformed_examples, log) == (0, [], [])


def test_records_too_short_for_their_format_are_counted_and_the_first_quoted(tmp_path):
    """Real sub-buffers of the v6 sample, seven page-event records cut to 8 bytes."""
    path = small_v6(tmp_path / "small.v6.dat")
    layout = read_layout(path)
    cpu0 = layout.buffers[""].cpus[0]
    hp = layout.header_page
    raw = np.frombuffer(path.read_bytes()[cpu0.offset : cpu0.offset + cpu0.size], np.uint8)
    rec = decode_subbuffers(raw, layout.page_size, hp.commit_size, hp.data_offset)
    decoder = EntryDecoder(layout.formats)
    whole = IngestStats()
    index, _ = decoder.decode_numpy(raw, rec.offset, rec.length, whole)
    assert whole.malformed == 0 and len(index) > 100
    cut = np.sort(index[np.linspace(0, len(index) - 1, 7).astype(int)])
    length = rec.length.copy()
    length[cut] = 8
    stats = IngestStats()
    kept, _ = decoder.decode_numpy(raw, rec.offset, length, stats)
    assert len(kept) == len(index) - 7
    assert stats.malformed == 7
    assert [e.split(":")[0] for e in stats.malformed_examples] == [
        f"record {i}" for i in cut[:MALFORMED_EXAMPLES]]
    assert all(" record of 8 bytes, its format needs " in e
               for e in stats.malformed_examples)
