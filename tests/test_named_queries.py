"""Diff tests: every named query on a small inline trace, against the expected rows.

The trace exercises each case a query distinguishes: a block freed whole, a non-compound
order-2 block freed in pieces, a batched free repeating mm_page_free, a free-only page,
a failed THP allocation, an extfrag fallback, a softirq GFP_ATOMIC request, raw hex gfp
flags, and a second time window.
"""

from __future__ import annotations

import lzma
import re
import textwrap
from collections import Counter

import pytest

from replay.database import open_datasets
from replay.queries import named_queries
from tests.conftest import SAMPLES

TRACE = """
# tracer: nop
         python3-100   [000] .....     1.000000: mm_page_alloc: page=0000000011111111 pfn=0x1000 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_COMP
         python3-100   [000] .....     1.000100: mm_page_alloc: page=0000000022222222 pfn=0x2000 order=2 migratetype=0 gfp_flags=GFP_KERNEL
         python3-100   [000] .....     1.000200: mm_page_free: page=0000000011111111 pfn=0x1000 order=0
         python3-100   [000] .....     1.000210: mm_page_free_batched: page=0000000011111111 pfn=0x1000 order=0
     kworker/0:1-7     [000] ..s..     1.000300: mm_page_alloc: page=0000000033333333 pfn=0x3000 order=3 migratetype=0 gfp_flags=GFP_ATOMIC|__GFP_COMP
         python3-100   [000] .....     1.000400: mm_page_free: page=0000000022222222 pfn=0x2000 order=0
         python3-100   [000] .....     1.000500: mm_page_free: page=0000000022222223 pfn=0x2001 order=0
         python3-100   [000] .....     1.000600: mm_page_free: page=0000000022222224 pfn=0x2002 order=1
         python3-100   [000] .....     1.000700: mm_page_free: page=0000000055555555 pfn=0x5000 order=0
         python3-100   [000] .....     1.000800: mm_page_alloc: page=0000000000000000 pfn=0x0 order=9 migratetype=1 gfp_flags=GFP_TRANSHUGE_LIGHT
         python3-101   [001] .....     1.000900: mm_page_alloc_extfrag: page=0000000066666666 pfn=0x6000 alloc_order=0 fallback_order=10 alloc_migratetype=0 fallback_migratetype=1 fragmenting=1 change_ownership=1
         python3-101   [001] .....     1.001000: mm_page_alloc: page=0000000066666666 pfn=0x6000 order=0 migratetype=0 gfp_flags=GFP_KERNEL
         python3-101   [001] .....     1.001100: mm_page_alloc_zone_locked: page=0000000077777777 pfn=0x7000 order=0 migratetype=1 percpu_refill=1
         python3-101   [001] .....     1.001200: mm_page_pcpu_drain: page=0000000077777777 pfn=0x7000 order=0 migratetype=1
         python3-101   [001] .....     1.001300: mm_page_alloc: page=0000000088888888 pfn=0x8000 order=9 migratetype=1 gfp_flags=GFP_TRANSHUGE
         python3-101   [001] .....     1.001400: mm_page_alloc: page=0000000099999999 pfn=0x9000 order=1 migratetype=0 gfp_flags=GFP_ATOMIC|__GFP_COMP
         python3-101   [001] .....     1.001500: mm_page_free: page=0000000099999999 pfn=0x9000 order=1
         python3-101   [001] .....     1.001600: mm_page_alloc: page=00000000aaaaaaaa pfn=0xa000 order=1 migratetype=2 gfp_flags=0x152cc0
         python3-100   [000] .....     2.500000: mm_page_alloc: page=0000000011111111 pfn=0x1000 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE
"""

T = "trace.txt.replay"

EXPECTED = {
    ("order_histogram", ()): [
        (T, "mm_page_alloc", 0, 3, 3, 0),
        (T, "mm_page_alloc", 1, 2, 4, 0),
        (T, "mm_page_alloc", 2, 1, 4, 0),
        (T, "mm_page_alloc", 3, 1, 8, 0),
        (T, "mm_page_alloc", 9, 2, 1024, 1),
        (T, "mm_page_alloc_zone_locked", 0, 1, 1, 0),
        (T, "mm_page_free", 0, 4, 4, 0),
        (T, "mm_page_free", 1, 2, 4, 0),
        (T, "mm_page_free_batched", 0, 1, 1, 0),
        (T, "mm_page_pcpu_drain", 0, 1, 1, 0),
    ],
    ("order_migratetype", ()): [
        (T, 0, 0, "Unmovable", 1, 1),
        (T, 0, 1, "Movable", 2, 2),
        (T, 1, 0, "Unmovable", 1, 2),
        (T, 1, 2, "Reclaimable", 1, 2),
        (T, 2, 0, "Unmovable", 1, 4),
        (T, 3, 0, "Unmovable", 1, 8),
        (T, 9, 1, "Movable", 1, 512),
    ],
    # Before Linux 4.4 MOVABLE was 2 and RECLAIMABLE 1.
    ("order_migratetype", (("kernel", "4.3.0"),)): [
        (T, 0, 0, "Unmovable", 1, 1),
        (T, 0, 1, "Reclaimable", 2, 2),
        (T, 1, 0, "Unmovable", 1, 2),
        (T, 1, 2, "Movable", 1, 2),
        (T, 2, 0, "Unmovable", 1, 4),
        (T, 3, 0, "Unmovable", 1, 8),
        (T, 9, 1, "Reclaimable", 1, 512),
    ],
    ("gfp_flags", ()): [
        (T, "GFP_ATOMIC|__GFP_COMP", 2, 10, 1, 3, 0),
        (T, "GFP_KERNEL", 2, 5, 0, 2, 0),
        (T, "0x152cc0", 1, 2, 1, 1, 0),
        (T, "GFP_HIGHUSER_MOVABLE", 1, 1, 0, 0, 0),
        (T, "GFP_HIGHUSER_MOVABLE|__GFP_COMP", 1, 1, 0, 0, 0),
        (T, "GFP_TRANSHUGE", 1, 512, 9, 9, 0),
        (T, "GFP_TRANSHUGE_LIGHT", 1, 512, 9, 9, 1),
    ],
    ("gfp_flags", (("min_order", "3"),)): [
        (T, "GFP_ATOMIC|__GFP_COMP", 1, 8, 3, 3, 0),
        (T, "GFP_TRANSHUGE", 1, 512, 9, 9, 0),
        (T, "GFP_TRANSHUGE_LIGHT", 1, 512, 9, 9, 1),
    ],
    ("per_process", ()): [
        (T, 100, "python3", 4, 518, 9, 1, 5),
        (T, 101, "python3", 4, 517, 9, 0, 1),
        (T, 7, "kworker/0:1", 1, 8, 3, 0, 0),
    ],
    ("per_process", (("top", "1"), ("min_order", "1"))): [
        (T, 100, "python3", 2, 516, 9, 1, 5),
    ],
    ("alloc_free", ()): [
        (T, "alloc+freed", 3, 7),
        (T, "alloc-only", 5, 524),
        (T, "free-only", 1, 1),
        (T, "failed", 1, 512),
    ],
    ("failures", ()): [
        (T, 9, "GFP_TRANSHUGE_LIGHT", "python3", 1, 1_000_800_000, 1_000_800_000),
    ],
    ("lifetime_percentiles", ()): [
        (T, 0, 3, 1, 2, 200_000, 200_000, 200_000, 200_000),
        (T, 1, 2, 1, 1, 100_000, 100_000, 100_000, 100_000),
        (T, 2, 1, 1, 0, 500_000, 500_000, 500_000, 500_000),
        (T, 3, 1, 0, 1, None, None, None, None),
        (T, 9, 1, 0, 1, None, None, None, None),
    ],
    ("lifetime_percentiles", (("min_order", "2"),)): [
        (T, 2, 1, 1, 0, 500_000, 500_000, 500_000, 500_000),
        (T, 3, 1, 0, 1, None, None, None, None),
        (T, 9, 1, 0, 1, None, None, None, None),
    ],
    ("request_rate", ()): [
        (T, 0, 0, 0, 2, 2, 2.0),
        (T, 0, 0, 1, 2, 4, 2.0),
        (T, 0, 0, 2, 1, 4, 1.0),
        (T, 0, 0, 3, 1, 8, 1.0),
        (T, 0, 0, 9, 2, 1024, 2.0),
        (T, 1, 1_000_000_000, 0, 1, 1, 1.0),
    ],
    ("request_rate", (("window_ms", "500"), ("min_order", "9"))): [
        (T, 0, 0, 9, 2, 1024, 4.0),
    ],
    ("extfrag_fallbacks", ()): [
        (T, 0, 10, "Unmovable", "Movable", 1, 1),
    ],
    ("pageblock_pollution", ()): [
        (T, 9, 5, 2, 0, 0.2222),
    ],
    # 4096-page blocks: each event address still falls in a block of its own.
    ("pageblock_pollution", (("pageblock_order", "12"),)): [
        (T, 9, 5, 2, 0, 0.2222),
    ],
    ("alloc_context", ()): [
        (T, 1, "atomic", 1, 2, 0),
        (T, 1, "unknown", 1, 2, 0),
        (T, 2, "can_sleep", 1, 4, 0),
        (T, 3, "irq", 1, 8, 0),
        (T, 9, "can_sleep", 1, 512, 0),
        (T, 9, "nowait", 1, 512, 1),
    ],
    ("alloc_context", (("min_order", "3"),)): [
        (T, 3, "irq", 1, 8, 0),
        (T, 9, "can_sleep", 1, 512, 0),
        (T, 9, "nowait", 1, 512, 1),
    ],
}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    from replay.ingestion import ingest

    src = tmp_path_factory.mktemp("named") / "trace.txt"
    src.write_text(textwrap.dedent(TRACE).lstrip("\n"))
    with open_datasets([ingest(src, src.with_name(T), quiet=True)]) as database:
        yield database


@pytest.mark.parametrize("name, params", list(EXPECTED), ids=lambda v: str(v))
def test_named_query(db, name, params):
    got = [tuple(r.values()) for r in db.fetch_query(name, dict(params)).to_pylist()]
    assert got == EXPECTED[(name, params)]


def test_every_named_query_has_a_diff_test():
    tested = {name for name, _ in EXPECTED} | {"top_stacks"}  # test_top_stacks.py
    tested |= {"memarea_cost"}  # test_report_queries.py
    tested |= {"request_classes"}  # test_recommend_classes.py
    assert tested == set(named_queries())


def _documented_columns(sql: str) -> list[str]:
    header = [line for line in sql.splitlines() if line.startswith("--")]
    start = header.index("-- Columns:")
    return [line.split()[1] for line in header[start + 1:] if line.startswith("--   ")]


@pytest.mark.parametrize("name", list(named_queries()))
def test_header_documents_question_params_and_columns(db, name):
    q = named_queries()[name]
    header = "\n".join(line for line in q.sql.splitlines() if line.startswith("--"))
    assert q.description and "Question:" in header
    body = q.sql[len(header):]
    for p in q.params:
        assert f"${p.name}" in body, f"{p.name} declared but unused"
        assert p.help
    if not q.params:
        assert "Parameters: none." in header
    if "FROM requests" in q.sql:
        pytest.skip("needs a replay's requests view: test_report_queries.py runs it")
    assert _documented_columns(q.sql) == db.fetch_query(name).column_names


# --- a real trace against counts made independently, over the text itself ----------

EVENT_LINE = re.compile(r"\]\s+\S+\s+\d+\.\d+: (mm_page_\w+): (.*)$")


def _count(path):
    """(event, order) counts, successful (order, migratetype) and gfp_flags counts."""
    by_event, by_mt, by_gfp = Counter(), Counter(), Counter()
    with lzma.open(path, "rt") as fh:
        for line in fh:
            m = EVENT_LINE.search(line)
            if not m:
                continue
            fields = dict(kv.split("=", 1) for kv in m[2].split() if "=" in kv)
            if "order" in fields:
                by_event[m[1], int(fields["order"])] += 1
            if m[1] == "mm_page_alloc":
                by_gfp[fields["gfp_flags"]] += 1
                if not re.fullmatch(r"0+|\(null\)|\(nil\)", fields["page"]):  # failed
                    by_mt[int(fields["order"]), int(fields["migratetype"])] += 1
    return by_event, by_mt, by_gfp


def test_real_trace_counts(tmp_path):
    from replay.ingestion import ingest

    path = SAMPLES / "ftrace-thp.trace.txt.xz"
    by_event, by_mt, by_gfp = _count(path)
    with open_datasets([ingest(path, tmp_path / "thp", quiet=True)]) as db:
        hist = db.fetch_query("order_histogram").to_pylist()
        mts = db.fetch_query("order_migratetype").to_pylist()
        gfps = db.fetch_query("gfp_flags").to_pylist()
    assert {(r["event"], r["order"]): r["requests"] for r in hist} == by_event
    assert {(r["order"], r["migratetype"]): r["requests"] for r in mts} == by_mt
    assert {r["gfp_flags"]: r["requests"] for r in gfps} == by_gfp
    assert sum(by_mt.values()) == 7164  # sample_traces/README.md: mm_page_alloc events
