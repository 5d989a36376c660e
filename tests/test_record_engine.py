"""What the replay engine takes from `replay record`'s snapshots: the state of never-seen
pages from kpageflags, and the end state checked against buddyinfo per zone and order."""

from __future__ import annotations

import numpy as np
import zstandard

from replay import snapshots
from replay.engine.end_state import agreement_lines, end_state_agreement, pcp_pages
from replay.engine.layout import Layout, Zone, find_snapshot, parse_buddyinfo
from replay.engine.simulate import SimOptions, build_context, observed_end_blocks, prepare
from replay.record import RecordOptions, record
from replay.dataset import KPAGEFLAGS
from replay.kernel.procfs import KPF_BUDDY, kpageflags_free
from tests.engine_streams import KERNEL, make_stream, zone_layout
from tests.test_record import live, tracefs_lock  # noqa: F401 - the fixture is used below


def test_kpageflags_free_is_the_buddy_bit_of_every_pfn(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    flags = rng.integers(0, 1 << 26, 10_001, dtype=np.uint64)  # random KPF bits
    path = tmp_path / KPAGEFLAGS
    path.write_bytes(zstandard.ZstdCompressor().compress(flags.astype("<u8").tobytes()))
    monkeypatch.setattr(snapshots, "_CHUNK", 1001)  # reads that split a u64
    free = kpageflags_free(path)
    assert free.dtype == np.uint8 and len(free) == len(flags)
    assert np.array_equal(free, (flags >> np.uint64(KPF_BUDDY)) & np.uint64(1))


def test_never_seen_pages_take_the_snapshot_state():
    # pages 4-5 first freed (allocated before the trace), 8-11 first allocated (free
    # before), the rest of [0, 16) never seen; the snapshot covers pfns 0-11 only
    stream = make_stream([("free", 4, 1), ("alloc", 8, 2, KERNEL)])
    snap = np.zeros(12, np.uint8)
    snap[[0, 1, 4, 6]] = 1  # the snapshot's word on 4 is overruled by the trace
    ctx = build_context(stream, zone_layout(0, 16), SimOptions(unknown="allocated"), snap,
                        "kpageflags test")
    free = np.flatnonzero(ctx.pcls0[:16] == 0).tolist()
    assert free == [0, 1, 6, 8, 9, 10, 11]
    assert ctx.unseen_free == 3 and ctx.unseen_source == "kpageflags test"
    # beyond the snapshot, --unknown decides
    ctx = build_context(stream, zone_layout(0, 16), SimOptions(unknown="free"), snap)
    assert np.flatnonzero(ctx.pcls0[:16] == 0).tolist() == [0, 1, 6, 8, 9, 10, 11, 12, 13,
                                                             14, 15]


ZONEINFO = """Node 0, zone      DMA
  pages free     3840
  pagesets
    cpu: 0
              count: 0
    cpu: 1
              count: 0
Node 0, zone   Normal
  pages free     40988
  pagesets
    cpu: 0
              count:    16574
              high:     24899
    cpu: 1
              count:    27960
"""


def test_end_state_agreement_per_zone_and_order():
    layout = Layout((Zone(0, "DMA", 1, 4095, 3998), Zone(0, "Normal", 4096, 4096, 4096)),
                    "test")
    end = np.array([[0, 0, 1, 3], [10, 4, 0, 2]], np.int64)
    buddyinfo = parse_buddyinfo("Node 0, zone      DMA      0      0      1      3\n"
                                "Node 0, zone   Normal      2      3      1      2\n")
    assert pcp_pages(ZONEINFO) == {"0/DMA": 0, "0/Normal": 44534}
    dma, normal = end_state_agreement(layout, end, buddyinfo, pcp_pages(ZONEINFO))
    assert dma["error"] == [0, 0, 0, 0] and dma["page_weighted_error"] == 0
    assert normal["error"] == [8, 1, -1, 0]
    assert normal["free_pages_reconstructed"] == 10 + 8 + 16
    assert normal["free_pages_buddyinfo"] == 2 + 6 + 4 + 16
    assert normal["page_weighted_error"] == (8 + 2 + 4) / 28
    assert normal["pcp_pages"] == 44534
    text = "\n".join(agreement_lines([dma, normal]))
    assert "0/Normal error" in text and "(50.0% of free pages)" in text
    assert "0/Normal: +6 free pages vs buddyinfo; 44534 pages on per-CPU lists" in text


@live
def test_live_kpageflags_start_state_brings_the_end_state_to_buddyinfo(tracefs_lock,
                                                                        tmp_path):
    out = record(RecordOptions(output=tmp_path / "kpf.replay", duration=5, kpageflags=True,
                               command=("dd", "if=/dev/zero", "of=/dev/null", "bs=8M",
                                        "count=1", "status=none"), quiet=True))
    snapdir = out / "snapshots"
    buddyinfo = parse_buddyinfo(find_snapshot(snapdir, "end-buddyinfo").read_text())
    pcp = pcp_pages(find_snapshot(snapdir, "end-zoneinfo").read_text())
    options = SimOptions(max_orders=(9,), jobs=1)
    with_snapshot = prepare(out, options)
    assert with_snapshot.unseen_source.startswith("kpageflags")
    assert with_snapshot.unseen_free > 0
    blocks, _ = observed_end_blocks(with_snapshot)
    rows = end_state_agreement(with_snapshot.layout, blocks, buddyinfo, pcp)
    without = build_context(with_snapshot.stream, with_snapshot.layout, options)
    blocks0, _ = observed_end_blocks(without)
    rows0 = end_state_agreement(without.layout, blocks0, buddyinfo, pcp)
    for r, r0 in zip(rows, rows0):
        if not r["free_pages_buddyinfo"]:
            continue
        # conservative "never seen = allocated" loses nearly every free page...
        assert r0["page_weighted_error"] > 0.5, r0
        # ... the snapshot brings them back: what remains is mostly the per-CPU lists
        assert r["page_weighted_error"] < 0.25, r
        excess = r["free_pages_reconstructed"] - r["free_pages_buddyinfo"]
        assert abs(excess) <= r["pcp_pages"] + 0.02 * r["free_pages_buddyinfo"], r
