"""What the replay engine takes from `replay record`'s snapshots: every untouched page's
state from kpageflags, snapshot directories' names, and the end state per zone."""

from __future__ import annotations

import numpy as np
import pytest
import zstandard

from ingest.errors import InputError
from replay.dataset import KPAGEFLAGS
from replay.engine.options import SimOptions
from replay.engine.world import Snapshots, load_snapshots
from replay.kernel import procfs
from replay.kernel.pagestate import BUDDY, CLEAN, DIRTY, MOVABLE, OUTSIDE, PINNED
from replay.kernel.procfs import KPF_BUDDY, kpageflags_free
from replay.record import RecordOptions, record
from tests.engine_streams import KERNEL, context, zone
from tests.test_record import live, tracefs_lock  # noqa: F401 - the fixture is used below


def test_kpageflags_free_is_the_buddy_bit_of_every_pfn(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    flags = rng.integers(0, 1 << 26, 10_001, dtype=np.uint64)  # random KPF bits
    path = tmp_path / KPAGEFLAGS
    path.write_bytes(zstandard.ZstdCompressor().compress(flags.astype("<u8").tobytes()))
    monkeypatch.setattr(procfs, "_CHUNK", 1001)  # reads that split a u64
    free = kpageflags_free(path)
    assert free.dtype == np.uint8 and len(free) == len(flags)
    assert np.array_equal(free, (flags >> np.uint64(KPF_BUDDY)) & np.uint64(1))


def _kpf(*bits: int) -> int:
    return sum(1 << b for b in bits)


def test_never_seen_pages_take_the_kpageflags_class(tmp_path):
    # pages 4-5 first freed (allocated before the trace), 8-11 first allocated (free
    # before), the rest of [0, 16) never seen; the image covers pfns 0-11 only
    flags = np.zeros(12, np.uint64)
    flags[[0, 1, 4, 6]] = _kpf(procfs.KPF_BUDDY)  # the image's word on 4 is overruled
    flags[2] = _kpf(procfs.KPF_LRU)  # clean page cache
    flags[3] = _kpf(procfs.KPF_LRU, procfs.KPF_DIRTY)  # dirty page cache
    flags[5] = _kpf(procfs.KPF_LRU, procfs.KPF_ANON)  # anonymous, but the trace says more
    flags[7] = _kpf(procfs.KPF_SLAB)  # slab (reclaimable or not): pinned
    path = tmp_path / KPAGEFLAGS
    path.write_bytes(zstandard.ZstdCompressor().compress(flags.astype("<u8").tobytes()))
    snaps = Snapshots(None, start_zoneinfo=[zone(0, 16)], kpageflags=path,
                      files={"start_zoneinfo": "test"})
    w = context([("free", 4, 1), ("alloc", 8, 2, KERNEL)], snaps).world
    assert np.flatnonzero(w.pcls[:16] == BUDDY).tolist() == [0, 1, 6, 8, 9, 10, 11]
    assert (w.pcls[2], w.pcls[3], w.pcls[7]) == (CLEAN, DIRTY, PINNED)
    assert w.pcls[5] == MOVABLE  # pre-trace allocation classed from the image
    assert (w.pcls[12:16] == OUTSIDE).all()  # beyond the image: not managed memory
    assert w.source.startswith("kpageflags") and not w.estimate


@pytest.mark.parametrize("names", [("start-{}", "end-{}"), ("before.{}", "after.{}"),
                                   ("start-{}.txt", "end-{}.txt")])
def test_snapshot_directories_name_their_files_either_way(tmp_path, names):
    for pattern in names:
        (tmp_path / pattern.format("zoneinfo")).write_text(ZONEINFO_FULL)
        (tmp_path / pattern.format("buddyinfo")).write_text(
            "Node 0, zone   Normal      2      3      1      2\n")
    snaps = load_snapshots(tmp_path, KPAGEFLAGS, required=True)
    assert snaps.start_zoneinfo and snaps.end_zoneinfo and snaps.end_buddyinfo


def test_a_snapshot_directory_with_nothing_recognised_is_an_error(tmp_path):
    (tmp_path / "buddy.txt").write_text("x")
    with pytest.raises(InputError, match="no /proc snapshot recognised.*before.zoneinfo"):
        load_snapshots(tmp_path, KPAGEFLAGS, required=True)


def test_zoneinfo_parse_sizes_watermarks_and_pcp():
    zones = procfs.parse_zoneinfo(ZONEINFO_FULL)
    (normal,) = zones
    assert (normal.start_pfn, normal.spanned, normal.managed) == (1048576, 5505024, 557056)
    assert (normal.wmark_min, normal.wmark_low, normal.free) == (7057, 8821, 320137)
    assert normal.protection == (0, 0, 0, 0, 0)
    assert normal.pcp_pages == 6615 + 3224
    assert normal.counters["nr_zone_write_pending"] == 100


ZONEINFO_FULL = """Node 0, zone   Normal
  pages free     320137
        boost    0
        min      7057
        low      8821
        high     10585
        spanned  5505024
        present  5505024
        managed  557056
        protection: (0, 0, 0, 0, 0)
      nr_free_pages 320137
      nr_zone_write_pending 100
  pagesets
    cpu: 0
              count:    6615
              high:     8465
    cpu: 1
              count:    3224
  start_pfn:           1048576
"""


@live
def test_live_kpageflags_start_state_brings_the_end_state_to_buddyinfo(tracefs_lock,
                                                                        tmp_path):
    out = record(RecordOptions(output=tmp_path / "kpf.replay", duration=5, kpageflags=True,
                               command=("dd", "if=/dev/zero", "of=/dev/null", "bs=8M",
                                        "count=1", "status=none"), quiet=True))
    from replay.engine.simulate import run_sweep

    summary = run_sweep(out, SimOptions(max_orders=(9,), modes=("simulated",),
                                        searches=("linear",), policies=("free",), jobs=1),
                        quiet=True)
    fid = summary.fidelity
    assert fid.world_source.startswith("kpageflags")
    for name, z in fid.zones.items():
        if not z.end_free_pages.proc:
            continue
        err = abs(z.end_free_pages.model - z.end_free_pages.proc)
        assert err <= 0.05 * z.end_free_pages.proc + (z.end_pcp_pages.proc or 0), (name, z)
