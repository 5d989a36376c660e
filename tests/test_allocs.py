"""The allocs view: each allocation paired with the free that ends it (queries/_allocs.sql).

Edge cases on inline traces, then a real trace against an independent pairing written
as a plain sequential simulation over the trace text (no DuckDB, no reader).
"""

from __future__ import annotations

import lzma
import re
from collections import Counter, defaultdict

import pytest

from replay.database import open_datasets
from tests.conftest import SAMPLES

ALLOC = "mm_page_alloc: page=0000000012345678 pfn={pfn:#x} order={order} migratetype={mt} gfp_flags={gfp}"
FREE = "mm_page_free: page=0000000012345678 pfn={pfn:#x} order={order}"
BATCHED = "mm_page_free_batched: page=0000000012345678 pfn={pfn:#x} order=0"


def _trace(events: list[str]) -> str:
    """ftrace lines for `events`, one microsecond apart from t = 1 s."""
    return "\n".join(
        f"         python3-100   [000] .....     1.{i:06d}: {e}" for i, e in enumerate(events)
    ) + "\n"


def _pairs(ingest_text, events: list[str]) -> tuple[list[tuple], list[tuple]]:
    """(allocs rows, _free_only rows) of the trace made of `events`."""
    with open_datasets([ingest_text(_trace(events))]) as db:
        allocs = db.fetch("SELECT alloc_seq, free_seq, freed_as, lifetime_ns, pfn, \"order\" "
                          "FROM allocs ORDER BY alloc_seq").to_pylist()
        free_only = db.fetch("SELECT seq, pfn, \"order\", pages FROM _free_only ORDER BY seq")
        return ([tuple(r.values()) for r in allocs],
                [tuple(r.values()) for r in free_only.to_pylist()])


def a(pfn, order=0, mt=1, gfp="GFP_KERNEL"):
    return ALLOC.format(pfn=pfn, order=order, mt=mt, gfp=gfp)


def f(pfn, order=0):
    return FREE.format(pfn=pfn, order=order)


def test_whole_free_and_batched_repeat(ingest_text):
    events = [a(0x100), f(0x100), BATCHED.format(pfn=0x100), a(0x100), f(0x100)]
    allocs, free_only = _pairs(ingest_text, events)
    assert allocs == [
        (0, 1, "whole", 1000, 0x100, 0),
        (3, 4, "whole", 1000, 0x100, 0),
    ]
    assert free_only == []


def test_double_free_is_free_only(ingest_text):
    events = [a(0x100), f(0x100), f(0x100)]
    allocs, free_only = _pairs(ingest_text, events)
    assert allocs == [(0, 1, "whole", 1000, 0x100, 0)]
    assert free_only == [(2, 0x100, 0, 1)]


def test_non_compound_block_freed_in_pieces(ingest_text):
    # split_page(): the order-2 block comes back as 0, 0 and an order-1 piece; page
    # 0x200 is reallocated and freed in between, which ends nothing of the block.
    events = [a(0x200, 2), f(0x200), a(0x200), f(0x203), f(0x200), f(0x201), f(0x202, 1)]
    allocs, free_only = _pairs(ingest_text, events)
    assert allocs == [
        (0, 6, "pages", 6000, 0x200, 2),
        (2, 4, "whole", 2000, 0x200, 0),
    ]
    assert free_only == [(6, 0x202, 1, 1)]  # 0x203 came back twice


def test_block_partly_freed_stays_allocated(ingest_text):
    events = [a(0x200, 2), f(0x200), f(0x201), f(0x202)]
    allocs, free_only = _pairs(ingest_text, events)
    assert allocs == [(0, None, None, None, 0x200, 2)]
    assert free_only == []


def test_split_folio_and_order_10_across_pageblocks(ingest_text):
    # A THP split by split_huge_page() comes back as 512 order-0 frees; an order-10
    # block spans two pageblocks and comes back as two order-9 frees.
    thp = [a(0x40000, 9, gfp="GFP_TRANSHUGE")] + [f(0x40000 + i) for i in range(512)]
    big = [a(0x80000, 10), f(0x80200, 9), f(0x80000, 9)]
    allocs, free_only = _pairs(ingest_text, thp + big)
    assert allocs == [
        (0, 512, "pages", 512_000, 0x40000, 9),
        (513, 515, "pages", 2000, 0x80000, 10),
    ]
    assert free_only == []


def test_old_kernel_event_names(ingest_text):
    # 2.6.32: mm_page_free_direct and mm_pagevec_free are disjoint; each ends a page.
    text = (
        "          python-1     [000]  1.000000: mm_page_alloc: page=ffffea0000003800 pfn=256 order=0 migratetype=2 gfp_flags=GFP_HIGHUSER_MOVABLE\n"
        "          python-1     [000]  1.000001: mm_page_alloc: page=ffffea0000003838 pfn=257 order=0 migratetype=2 gfp_flags=GFP_HIGHUSER_MOVABLE\n"
        "          python-1     [000]  1.000002: mm_pagevec_free: page=ffffea0000003800 pfn=256 cold=0\n"
        "          python-1     [000]  1.000003: mm_page_free_direct: page=ffffea0000003838 pfn=257 order=0\n"
    )
    with open_datasets([ingest_text(text)]) as db:
        got = db.fetch("SELECT alloc_seq, free_seq, freed_as FROM allocs ORDER BY 1").to_pylist()
    assert [tuple(r.values()) for r in got] == [(0, 2, "whole"), (1, 3, "whole")]


# --- a real trace against an independent sequential pairing -------------------------

LINE = re.compile(r"\[\d{3}\]\s+\S+\s+(\d+)\.(\d{6}):\s+(mm_page_\w+): (.*)$")
FIELD = re.compile(r"(\w+)=(\S+)")


def _simulate(path):
    """Pair allocations with frees by walking the text in order, page by page."""
    last = {}        # pfn -> (event, seq, order) of its last non-batched event
    owner = {}       # page -> alloc seq of the block holding it
    blocks = {}      # alloc seq -> [order, migratetype, ts, pages left]
    ended = {}       # alloc seq -> lifetime ns
    free_only = 0
    seq = -1
    with lzma.open(path, "rt") as fh:
        for line in fh:
            m = LINE.search(line)
            if not m:
                continue
            seq += 1
            ts = int(m[1]) * 1_000_000_000 + int(m[2]) * 1000
            event, fields = m[3], dict(FIELD.findall(m[4]))
            if event not in ("mm_page_alloc", "mm_page_free", "mm_page_free_batched"):
                continue
            pfn, order = int(fields["pfn"], 0), int(fields.get("order", 0))
            prev = last.get(pfn)
            if event == "mm_page_alloc":
                blocks[seq] = [order, int(fields["migratetype"]), ts, 1 << order]
                for p in range(pfn, pfn + (1 << order)):
                    owner[p] = seq
                last[pfn] = (event, seq, order)
                continue
            if event == "mm_page_free_batched" and prev and prev[0] == "mm_page_free":
                continue  # repeats the mm_page_free before it
            if event == "mm_page_free":
                last[pfn] = (event, seq, order)
            if prev and prev[0] == "mm_page_alloc" and prev[2] == order and prev[1] not in ended:
                ended[prev[1]] = ts - blocks[prev[1]][2]
                for p in range(pfn, pfn + (1 << order)):
                    if owner.get(p) == prev[1]:
                        del owner[p]
                continue
            for p in range(pfn, pfn + (1 << order)):
                held = owner.pop(p, None)
                if held is None:
                    free_only += 1
                    continue
                blocks[held][3] -= 1
                if blocks[held][3] == 0:
                    ended[held] = ts - blocks[held][2]
    return blocks, ended, free_only


@pytest.mark.parametrize("sample", ["ftrace-thp.trace.txt.xz", "ftrace-tgid.trace.txt.xz"])
def test_real_trace_pairs_match_sequential_simulation(tmp_path, sample):
    from replay.ingestion import ingest

    path = SAMPLES / sample
    if not path.exists():
        pytest.skip(f"{path} not committed")
    blocks, ended, free_only_pages = _simulate(path)
    want_freed = Counter(blocks[s][0] for s in ended)
    want_alive = Counter(o for s, (o, *_rest) in blocks.items() if s not in ended)
    want_life = defaultdict(int)
    for s, life in ended.items():
        want_life[blocks[s][0]] += life

    ds = ingest(path, tmp_path / "ds", quiet=True)
    with open_datasets([ds]) as db:
        rows = db.fetch("""
            SELECT "order", count(free_seq) AS freed, count(*) - count(free_seq) AS alive,
                   coalesce(sum(lifetime_ns), 0)::BIGINT AS life
            FROM allocs GROUP BY 1 ORDER BY 1""").to_pylist()
        free_only = db.fetch("SELECT coalesce(sum(pages), 0)::BIGINT AS n FROM _free_only")
    assert {r["order"]: r["freed"] for r in rows if r["freed"]} == dict(want_freed)
    assert {r["order"]: r["alive"] for r in rows if r["alive"]} == dict(want_alive)
    assert {r["order"]: r["life"] for r in rows if r["life"]} == dict(want_life)
    assert free_only.column("n")[0].as_py() == free_only_pages
    assert sum(want_freed.values()) > 1000  # the sample really exercises the pairing
