"""One definition of each kernel fact: the SQL layer and the engine read the same traces
the same way (replay/kernel/: migratetype numbering per release, failed allocations,
page-pointer-only events), on 6.x, pre-4.4 and pre-4.1 (page pointer) forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.schema import event_batch
from replay.database import open_datasets
from replay.dataset import DatasetWriter
from replay.engine.stream import ALLOC, load_stream
from replay.kernel import fallbacks, migratetypes, orders
from replay.kernel.release import parse_release

#: (event, pfn, page, order, migratetype, gfp_flags): successes, a failure, frees
EVENTS = [
    ("mm_page_alloc", 100, None, 0, 0, "GFP_KERNEL"),
    ("mm_page_alloc", 101, None, 0, 1, "GFP_HIGHUSER_MOVABLE"),
    ("mm_page_alloc", 102, None, 0, 2, "GFP_KERNEL|__GFP_RECLAIMABLE"),
    ("mm_page_alloc", None, None, 3, 1, "GFP_KERNEL"),  # failed (4.1+: NULL page, no pfn)
    ("mm_page_alloc", None, 0, 2, 0, "GFP_ATOMIC"),  # failed (pre-4.1: page pointer 0)
    ("mm_page_alloc", None, 0xffffea0000123400, 0, 2, "GFP_KERNEL"),  # pre-4.1 success
    ("mm_page_free", 100, None, 0, None, None),
]


def _dataset(tmp_path: Path, release: str) -> Path:
    n = len(EVENTS)
    cols = dict(zip(("event", "pfn", "page", "order", "migratetype", "gfp_flags"),
                    map(list, zip(*EVENTS))))
    cols.update(ts_ns=list(range(n)), cpu=[0] * n, pid=[1] * n, comm=["t"] * n)
    out = tmp_path / f"k{release}.replay"
    with DatasetWriter(out) as w:
        w.add_events(event_batch(cols, n))
        return w.commit({"format": "test", "kernel_release": release, "source": {}})


@pytest.mark.parametrize("release", ["6.18.44", "4.3.0", "3.19.0"])
def test_sql_and_engine_agree(tmp_path, release):
    ds = _dataset(tmp_path, release)
    with open_datasets([ds]) as db:
        failed_sql = db.sql("SELECT count(*) FROM events WHERE event = 'mm_page_alloc' "
                            "AND alloc_failed(pfn, page)").fetchall()[0][0]
        names_sql = [r[0] for r in db.sql(
            "SELECT migratetype_name(migratetype, NULL, $r) FROM events "
            "WHERE event = 'mm_page_alloc' AND pfn IS NOT NULL ORDER BY seq",
            {"r": release}).fetchall()]
    s = load_stream(ds, parse_release(release))
    assert int(s.failed.sum()) == failed_sql == 2
    assert s.unplaceable == 1  # the pre-4.1 success: a page pointer, no pfn
    placed = (s.kind == ALLOC) & (s.pfn >= 0)
    names_engine = [migratetypes.NAMES_4_4[m] for m in s.migratetype[placed]]
    assert names_engine == names_sql
    before_4_4 = release.startswith(("4.3", "3."))
    assert names_sql == (["Unmovable", "Reclaimable", "Movable"] if before_4_4
                         else ["Unmovable", "Movable", "Reclaimable"])


def test_kernel_eras_follow_the_release():
    r = parse_release
    assert fallbacks.fallback_era(r("5.10.0-35-amd64")) == fallbacks.CLASSIC
    assert fallbacks.fallback_era(r("6.1.0")) == fallbacks.CLASSIC
    assert fallbacks.fallback_era(r("6.12.118")) == fallbacks.HYGIENE
    assert fallbacks.fallback_era(r("6.18.44-fc")) == fallbacks.CLAIM_STEAL
    assert fallbacks.fallback_era(None) == fallbacks.CLAIM_STEAL  # unknown: newest
    assert orders.pcp_orders_mask(r("5.10")) == 1
    assert orders.pcp_orders_mask(r("6.1")) == 0b1000001111
    assert [orders.pageblock_order(n) for n in (3, 9, 10)] == [3, 9, 9]
    assert migratetypes.to_engine(np.array([1, 2, 3]), r("4.3")).tolist() == [2, 1, -1]
