"""Diff tests for `perf script` text: sample lines with and without callchains."""

from __future__ import annotations

import json

import duckdb

from tests.conftest import rows


def stacks(dataset) -> list[tuple]:
    return duckdb.connect().execute(
        f"SELECT stack_id, depth, context, addr, symbol, dso "
        f"FROM read_parquet('{dataset}/stacks.parquet') ORDER BY stack_id, depth"
    ).fetchall()


def test_default_fields_without_callchains(ingest_text):
    # comm %16s, tid 5 or 7 wide; µs or --ns times; a comm with a colon and one with spaces
    ds = ingest_text("""
                perf  8931 [001]   514.829947616:             kmem:mm_page_alloc: page=0x1212e4 pfn=0x1212e4 order=0 migratetype=0 gfp_flags=GFP_HIGHUSER|__GFP_ACCOUNT
        memfd:sealed 1234567 [000]   514.829996828:             kmem:mm_page_free: page=0x1212e5 pfn=0x1212e5 order=2
         Web Content    42 [003]   514.830029:             kmem:mm_page_free_batched: page=0x108b90 pfn=0x108b90 order=0
                  dd   100 [002]   514.830030:             sched:sched_switch: prev_comm=dd
        """)
    assert rows(ds, 'SELECT ts_ns, cpu, pid, comm, event, pfn, "order", stack_id FROM events '
                    "ORDER BY seq") == [
        (514829947616, 1, 8931, "perf", "mm_page_alloc", 0x1212E4, 0, None),
        (514829996828, 0, 1234567, "memfd:sealed", "mm_page_free", 0x1212E5, 2, None),
        (514830029000, 3, 42, "Web Content", "mm_page_free_batched", 0x108B90, 0, None),
    ]
    meta = json.loads((ds / "meta.json").read_text())
    assert meta["format"] == "perf-script" and meta["skipped"]["by_event"] == {"sched_switch": 1}
    assert not (ds / "stacks.parquet").exists()


CALLCHAINS = """
perf 7069 [001]   509.396515963:             kmem:mm_page_alloc: page=0x185002 pfn=0x185002 order=0 migratetype=0 gfp_flags=GFP_HIGHUSER|__GFP_ACCOUNT
\tffffffff816396fb __alloc_frozen_pages_noprof+0x26b ([kernel.kallsyms])
\tffffffffc0a1b2c3 nft_do_chain+0x10 ([nf_tables])
\t           f838f __GI___libc_write+0x4f (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t           9dd38 [unknown] (/usr/bin/perf)

perf-exec 7071 [000]   509.396645084:             kmem:mm_page_free: page=0x10abed pfn=0x10abed order=3
\tffffffff816396fb __alloc_frozen_pages_noprof+0x26b ([kernel.kallsyms])

kworker/0:1 12 [000]   509.396700000:             kmem:mm_page_alloc: page=0x10abee pfn=0x10abee order=1 migratetype=0 gfp_flags=GFP_KERNEL
\tffffffff816396fb __alloc_frozen_pages_noprof+0x26b ([kernel.kallsyms])
\tffffffffc0a1b2c3 nft_do_chain+0x10 ([nf_tables])
\t           f838f __GI___libc_write+0x4f (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t           9dd38 [unknown] (/usr/bin/perf)

sleep 99 [001]   509.396800000:             sched:sched_switch: prev_comm=sleep
\tffffffff81000000 __schedule+0x1 ([kernel.kallsyms])

perf-exec 7071 [000]   509.396900000:             kmem:mm_page_free: page=0x10abed pfn=0x10abef order=0
\tffffffff816396fb __alloc_frozen_pages_noprof+0x26b ([kernel.kallsyms])
"""


def test_callchains_become_deduplicated_stacks(ingest_text):
    ds = ingest_text(CALLCHAINS)
    got = rows(ds, 'SELECT comm, pid, event, pfn, "order", stack_id FROM events ORDER BY seq')
    assert got == [
        ("perf", 7069, "mm_page_alloc", 0x185002, 0, 0),
        ("perf-exec", 7071, "mm_page_free", 0x10ABED, 3, 1),
        ("kworker/0:1", 12, "mm_page_alloc", 0x10ABEE, 1, 0),  # same callchain: same stack
        ("perf-exec", 7071, "mm_page_free", 0x10ABEF, 0, 1),
    ]
    assert stacks(ds) == [
        (0, 0, "kernel", 0xFFFFFFFF816396FB, "__alloc_frozen_pages_noprof+0x26b",
         "[kernel.kallsyms]"),
        (0, 1, "kernel", 0xFFFFFFFFC0A1B2C3, "nft_do_chain+0x10", "[nf_tables]"),
        (0, 2, "user", 0xF838F, "__GI___libc_write+0x4f", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        (0, 3, "user", 0x9DD38, None, "/usr/bin/perf"),
        (1, 0, "kernel", 0xFFFFFFFF816396FB, "__alloc_frozen_pages_noprof+0x26b",
         "[kernel.kallsyms]"),
    ]
    meta = json.loads((ds / "meta.json").read_text())
    assert meta["stack_frames"] == 5 and meta["skipped"]["total"] == 1


def test_callchains_crossing_block_boundaries(tmp_path, monkeypatch):
    """Blocks never end between a sample and its frame lines."""
    from ingest import lines
    from replay.ingestion import ingest

    monkeypatch.setattr(lines, "BLOCK_BYTES", 300)
    src = tmp_path / "perf.txt"
    src.write_text(CALLCHAINS.lstrip("\n") * 20)
    assert len(list(lines.line_blocks(src, continuation=b"\t"))) > 20
    ds = ingest(src, tmp_path / "out", quiet=True)
    assert rows(ds, "SELECT count(*), count(DISTINCT stack_id), count(stack_id) FROM events") \
        == [(80, 2, 80)]
    assert len(stacks(ds)) == 5


def test_malformed_sample_line(ingest_text):
    ds = ingest_text("""
        perf 7069 [001]   509.396515963:             kmem:mm_page_alloc: page=0x185002 pfn=0x185002 order=x migratetype=0 gfp_flags=GFP_KERNEL
        \tffffffff816396fb __alloc_frozen_pages_noprof+0x26b ([kernel.kallsyms])

        perf 7069 [001]   509.396515964:             kmem:mm_page_free: page=0x185002 pfn=0x185002 order=0
        \tffffffff816396fb free_pages+0x1 ([kernel.kallsyms])
        """)
    assert rows(ds, "SELECT pfn, stack_id FROM events") == [(0x185002, 0)]
    meta = json.loads((ds / "meta.json").read_text())
    assert meta["malformed"]["total"] == 1 and meta["malformed"]["examples"][0].startswith("line 1:")
    assert [s[4] for s in stacks(ds)] == ["free_pages+0x1"]
