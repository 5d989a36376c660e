"""top_stacks on a dataset with callchains, written through the dataset writer.

Stacks come from perf.data / `perf script` callchains; this dataset is built directly
(the schema's batch builders) so the query is tested whatever readers exist.
"""

from __future__ import annotations

import pyarrow as pa

from replay.database import open_datasets
from replay.dataset import DatasetWriter
from ingest.schema import event_batch, stack_batch

# stack 1: a THP fault; stack 2: the same caller at another offset; stack 3: a slab page.
FRAMES = [
    (1, 0, "__alloc_frozen_pages_noprof+0x26b"), (1, 1, "alloc_pages_mpol+0x86"),
    (1, 2, "vma_alloc_folio_noprof+0x6e"), (1, 3, "do_huge_pmd_anonymous_page+0xb3"),
    (1, 4, "handle_mm_fault+0x1e0"),
    (2, 0, "__alloc_frozen_pages_noprof+0x26b"), (2, 1, "alloc_pages_mpol+0x86"),
    (2, 2, "vma_alloc_folio_noprof+0x6e"), (2, 3, "do_huge_pmd_anonymous_page+0xc1"),
    (2, 4, "handle_mm_fault+0x1e0"),
    (3, 0, "__alloc_frozen_pages_noprof+0x26b"), (3, 1, "alloc_pages_noprof+0x4c"),
    (3, 2, "allocate_slab+0x2f"), (3, 3, None),
]


def _dataset(tmp_path):
    events = [  # (order, stack_id)
        (9, 1), (9, 2), (9, 1), (0, 3), (0, 3), (9, 3), (0, None),
    ]
    n = len(events)
    with DatasetWriter(tmp_path / "g.replay") as w:
        w.add_events(event_batch({
            "ts_ns": list(range(n)), "cpu": [0] * n, "pid": [1] * n, "comm": ["a"] * n,
            "event": ["mm_page_alloc"] * n, "pfn": [512 * i for i in range(n)],
            "order": [o for o, _ in events], "migratetype": [1] * n,
            "gfp_flags": ["GFP_TRANSHUGE"] * n, "stack_id": [s for _, s in events],
        }, n))
        w.add_stacks(stack_batch({
            "stack_id": [s for s, _, _ in FRAMES], "depth": [d for _, d, _ in FRAMES],
            "context": ["kernel"] * len(FRAMES),
            "addr": pa.array([0xFFFFFFFF81000000 + i for i in range(len(FRAMES))], pa.uint64()),
            "symbol": [f for _, _, f in FRAMES],
        }, len(FRAMES)))
        return w.commit({"format": "test"})


def test_top_stacks(tmp_path):
    with open_datasets([_dataset(tmp_path)]) as db:
        rows = [tuple(r.values()) for r in db.fetch_query("top_stacks").to_pylist()]
        thp = "do_huge_pmd_anonymous_page <- handle_mm_fault"
        slab = "allocate_slab <- 0xffffffff8100000d"
        assert rows == [
            ("g.replay", 0, 1, 2, 2, slab),
            ("g.replay", 9, 1, 3, 1536, thp),
            ("g.replay", 9, 2, 1, 512, slab),
        ]
        one = db.fetch_query("top_stacks", {"order": "9", "top": "1", "depth": "1"})
        assert [tuple(r.values()) for r in one.to_pylist()] == [
            ("g.replay", 9, 1, 3, 1536, "do_huge_pmd_anonymous_page")]


def test_stacks_view_empty_without_callchains(tmp_path, ingest_text):
    ds = ingest_text("""
        bash-1     [000] .....     1.000000: mm_page_alloc: page=0000000011111111 pfn=0x1000 order=0 migratetype=1 gfp_flags=GFP_KERNEL
    """)
    with open_datasets([ds]) as db:
        cols = db.fetch("SELECT * FROM stacks").column_names
        assert cols == ["stack_id", "depth", "context", "addr", "symbol", "dso", "trace"]
        assert db.fetch_query("top_stacks").num_rows == 0
