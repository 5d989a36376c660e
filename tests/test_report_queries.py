"""Diff test of the report's named query over the engine's `requests` view."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from replay.database import open_datasets
from replay.queries import named_query
from tests.test_named_queries import _documented_columns

TRACE = """
         python3-100   [000] .....     1.000000: mm_page_alloc: page=0000000011111111 pfn=0x1000 order=6 migratetype=1 gfp_flags=GFP_KERNEL
"""


def _requests(rows: list[tuple]) -> pa.Table:
    """A requests table (engine columns) with the given (mode, max_order, search,
    policy, cost) rows: a synthetic stand-in for the engine's output."""
    cols = list(zip(*rows))
    return pa.table({"mode": cols[0], "max_order": pa.array(cols[1], pa.int16()),
                     "search": cols[2], "policy": cols[3], "cost": pa.array(cols[4],
                                                                            pa.int64()),
                     "outcome": ["memarea_free"] * len(rows)})


def test_memarea_cost(ingest_text):
    ds = ingest_text(TRACE)
    (ds / "sim").mkdir()
    wanted = [("simulated", 5, "linear", "migrate", c) for c in (40, 10, 30, 20)]
    wanted.append(("simulated", 5, "bitmap", "migrate", 1))
    others = [("observed", 5, "linear", "migrate", 999), ("simulated", 6, "linear",
              "migrate", 999), ("simulated", 5, "linear", "free", 999)]
    pq.write_table(_requests(wanted + others), ds / "sim" / "requests.parquet")
    with open_datasets([ds]) as db:
        rel = db.query("memarea_cost", {"mode": "simulated", "max_order": "5",
                                        "policy": "migrate"})
        got = rel.fetchall()
        assert rel.columns == _documented_columns(named_query("memarea_cost").sql)
    t = ds.name
    linear = [(t, "linear", p, 10 if p <= 25 else 20 if p <= 50 else 30 if p <= 75 else 40,
               4) for p in range(0, 101, 5)]
    bitmap = [(t, "bitmap", p, 1, 1) for p in range(0, 101, 5)]
    assert got == bitmap + linear
