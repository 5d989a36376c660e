"""Opening datasets: the Python API, several datasets, the engine's views when present."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import replay
from replay.database import open_datasets
from ingest.errors import InputError, QueryError

LINE = ("    python3-100   [000] .....     1.000000: mm_page_alloc: page=0000000011111111 "
        "pfn=0x1000 order=0 migratetype=1 gfp_flags=GFP_KERNEL\n")


def test_open_gives_duckdb_relations(ingest_text):
    db = replay.open(ingest_text(LINE))
    rel = db.sql("SELECT pfn, \"order\" FROM allocs WHERE \"order\" >= $o", {"o": 0})
    assert rel.df().to_dict("records") == [{"pfn": 0x1000, "order": 0}]
    assert rel.fetchall() == [(0x1000, 0)]
    with pytest.raises(QueryError, match="nope"):
        db.sql("SELECT nope FROM events")
    db.close()


def test_engine_views_and_unique_trace_names(ingest_text, tmp_path):
    a = ingest_text(LINE, name="x.txt")
    (tmp_path / "other").mkdir()
    b = ingest_text(LINE, name="other/x.txt")
    (b / "sim").mkdir()
    pq.write_table(pa.table({"order": [10], "outcome": ["memarea_free"]}),
                   b / "sim" / "requests.parquet")
    with open_datasets([a, b]) as db:
        assert db.traces == [a.parent.name + "/x.txt.replay", "other/x.txt.replay"]
        got = db.fetch("SELECT trace, \"order\", outcome FROM requests").to_pylist()
        assert got == [{"trace": "other/x.txt.replay", "order": 10, "outcome": "memarea_free"}]
        with pytest.raises(QueryError, match="runs"):
            db.fetch("SELECT * FROM runs")
    with pytest.raises(InputError, match="given twice"):
        open_datasets([a, a])
