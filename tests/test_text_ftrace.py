"""Diff tests for the kernel's trace text and trace-cmd report: inline lines → ingest → SQL.

Each variant is a few lines in the shape a kernel or tool version prints them
(docs/formats.md §6-7), with the rows the dataset must hold.
"""

from __future__ import annotations

import gzip
import json
import lzma

import pytest
import zstandard

from ingest.errors import InputError
from ingest.schema import CONTEXT_BH_OFF, CONTEXT_HARDIRQ, CONTEXT_IRQS_OFF, CONTEXT_SOFTIRQ
from tests.conftest import rows

COLS = 'ts_ns, cpu, pid, comm, event, pfn, "order", migratetype, gfp_flags'


def meta(dataset) -> dict:
    return json.loads((dataset / "meta.json").read_text())


def test_kernel_6x_irq_flags_5_chars(ingest_text):
    ds = ingest_text("""
        # tracer: nop
        #
        # entries-in-buffer/entries-written: 3/3   #P:2
        #
                    bash-6300    [001] ..s..   441.670898: mm_page_free: page=00000000a2226c3b pfn=0x10a9e6 order=0
         kworker/u8:1-42      [000] d.h1.   441.670901: mm_page_alloc: page=0000000020ea2153 pfn=0x154ed0 order=9 migratetype=1 gfp_flags=GFP_TRANSHUGE|__GFP_THISNODE
                  <...>-7     [001] D....   441.670902: mm_page_alloc: page=0000000000000000 pfn=0x0 order=2 migratetype=0 gfp_flags=GFP_ATOMIC
        """)
    assert rows(ds, f"SELECT {COLS}, gfp, context FROM events ORDER BY seq") == [
        (441670898000, 1, 6300, "bash", "mm_page_free", 0x10A9E6, 0, None, None, None,
         CONTEXT_SOFTIRQ),
        (441670901000, 0, 42, "kworker/u8:1", "mm_page_alloc", 0x154ED0, 9, 1,
         "GFP_TRANSHUGE|__GFP_THISNODE", None, CONTEXT_IRQS_OFF | CONTEXT_HARDIRQ),
        # a failed allocation: NULL page, pfn printed as 0 → pfn null
        (441670902000, 1, 7, "<...>", "mm_page_alloc", None, 2, 0, "GFP_ATOMIC", None,
         CONTEXT_IRQS_OFF | CONTEXT_BH_OFF),
    ]
    m = meta(ds)
    assert m["cpus"] == 2 and m["format"] == "ftrace" and m["timestamps"] == "us"
    assert m["events"] == 3 and m["lost_events"]["total"] == 0


def test_tgid_column_and_comms_with_spaces_and_dashes(ingest_text):
    ds = ingest_text("""
        # entries-in-buffer/entries-written: 3/10   #P:4
          Web Content-2-3011    (   3001) [003] .....   10.000001: mm_page_free: page=00000000a2226c3b pfn=0x1 order=0
                  <idle>-0       (-------) [000] ..s1.   10.000002: mm_page_free_batched: page=00000000a3eae89e pfn=0x2 order=0
         my-dash-y-thing-1234567 (1234567) [002] .....   10.000003: mm_page_pcpu_drain: page=000000008abbb3bc pfn=0x3 order=1 migratetype=2
        """)
    assert rows(ds, f"SELECT {COLS} FROM events ORDER BY seq") == [
        (10000001000, 3, 3011, "Web Content-2", "mm_page_free", 1, 0, None, None),
        (10000002000, 0, 0, "<idle>", "mm_page_free_batched", 2, 0, None, None),
        (10000003000, 2, 1234567, "my-dash-y-thing", "mm_page_pcpu_drain", 3, 1, 2, None),
    ]
    m = meta(ds)
    # entries-written 10 but 3 kept: 7 were overwritten in the ring buffer (CPU unknown)
    assert m["lost_events"]["total"] == 7 and m["lost_events"]["per_cpu"] == {"-1": 7}
    assert m["cpus"] == 4


def test_kernel_3x_4_char_flags_decimal_pfn_raw_pointers(ingest_text):
    # 3.x: 4-char irq flags, pfn in decimal, unhashed pointers, (null) NULL page padded
    ds = ingest_text("""
                  bash-2101  [000] d..1  1234.567890: mm_page_alloc: page=ffffea0001a2b3c0 pfn=428748 order=0 migratetype=2 gfp_flags=GFP_KERNEL|GFP_REPEAT
                  bash-2101  [000] ...1  1234.567891: mm_page_alloc: page=          (null) pfn=0 order=3 migratetype=0 gfp_flags=GFP_NOWAIT
                  bash-2101  [001] .N..  1234.567892: mm_page_free: page=ffffea0001a2b3c0 pfn=428748 order=0
        """)
    assert rows(ds, f"SELECT {COLS}, gfp, page, context FROM events ORDER BY seq") == [
        (1234567890000, 0, 2101, "bash", "mm_page_alloc", 428748, 0, 2, "GFP_KERNEL|GFP_REPEAT",
         None, None, CONTEXT_IRQS_OFF),
        # GFP_NOWAIT is how kernels before 4.6 print gfp 0
        (1234567891000, 0, 2101, "bash", "mm_page_alloc", None, 3, 0, "GFP_NOWAIT", 0, None, 0),
        (1234567892000, 1, 2101, "bash", "mm_page_free", 428748, 0, None, None, None, None, 0),
    ]


def test_kernel_2_6_old_names_no_flags_column(ingest_text):
    # 2.6.3x: no irq-flags column, mm_page_free_direct / mm_pagevec_free (with cold=)
    ds = ingest_text("""
                  bash-2101  [000]  1234.567890: mm_page_free_direct: page=ffffea0001a2b3c0 pfn=428748 order=1
                  bash-2101  [000]  1234.567891: mm_pagevec_free: page=ffffea0001a2b400 pfn=428749 order=0 cold=1
                  bash-2101  [000]  1234.567892: mm_pagevec_free: page=ffffea0001a2b440 pfn=428750 cold=0
        """)
    assert rows(ds, 'SELECT event, pfn, "order", context FROM events ORDER BY seq') == [
        ("mm_page_free", 428748, 1, None),
        ("mm_page_free_batched", 428749, 0, None),
        ("mm_page_free_batched", 428750, 0, None),  # order implied before 4.15
    ]


def test_raw_counter_timestamps(ingest_text):
    ds = ingest_text("""
                  bash-2101  [000] ....  91839728372612: mm_page_free: page=0000000000c0ffee pfn=0x10 order=0
                  bash-2101  [001] ....  91839728372999: mm_page_free: page=0000000000c0ffee pfn=0x11 order=0
        """)
    assert rows(ds, "SELECT ts_ns FROM events ORDER BY seq") == [(91839728372612,),
                                                                  (91839728372999,)]
    assert meta(ds)["timestamps"] == "raw clock counts"


def test_gfp_raw_hex_none_and_remainder(ingest_text):
    # 6.10-6.12 print raw hex (enum leak, fixed by 60295b944ff6); 4.6+ print none for 0
    ds = ingest_text("""
          a-1 [000] .....   1.000001: mm_page_alloc: page=0000000000000001 pfn=0x100 order=0 migratetype=1 gfp_flags=0x140cca
          a-1 [000] .....   1.000002: mm_page_alloc: page=0000000000000001 pfn=0x101 order=0 migratetype=0 gfp_flags=none
          a-1 [000] .....   1.000003: mm_page_alloc: page=0000000000000001 pfn=0x102 order=0 migratetype=0 gfp_flags=GFP_KERNEL|0x4000000
        """)
    assert rows(ds, "SELECT pfn, gfp, gfp_flags FROM events ORDER BY seq") == [
        (0x100, 0x140CCA, "0x140cca"),
        (0x101, 0, "none"),
        (0x102, None, "GFP_KERNEL|0x4000000"),
    ]


def test_extfrag_zone_locked_and_unknown_fields(ingest_text):
    ds = ingest_text("""
          a-1 [000] .....   1.000001: mm_page_alloc_extfrag: page=00000000c0ffee00 pfn=0x1800 alloc_order=0 fallback_order=9 pageblock_order=9 alloc_migratetype=2 fallback_migratetype=1 fragmenting=0 change_ownership=1
          a-1 [000] .....   1.000002: mm_page_alloc_zone_locked: page=00000000c0ffee00 pfn=0x1800 order=0 migratetype=1 percpu_refill=1
          a-1 [000] .....   1.000003: mm_page_alloc_zone_locked: page=00000000c0ffee00 pfn=0x1810 order=3 migratetype=1 percpu_refill=0 some_future_field=0xdead
          a-1 [000] .....   1.000004: mm_page_free: page=00000000c0ffee00 pfn=0x1810 order=3 newkey=abc
        """)
    assert rows(ds, """SELECT event, pfn, "order", migratetype, alloc_order, fallback_order,
                       alloc_migratetype, fallback_migratetype, change_ownership, percpu_refill
                       FROM events ORDER BY seq""") == [
        ("mm_page_alloc_extfrag", 0x1800, None, None, 0, 9, 2, 1, 1, None),
        ("mm_page_alloc_zone_locked", 0x1800, 0, 1, None, None, None, None, None, 1),
        ("mm_page_alloc_zone_locked", 0x1810, 3, 1, None, None, None, None, None, 0),
        ("mm_page_free", 0x1810, 3, None, None, None, None, None, None, None),
    ]


def test_other_events_skipped_and_losses_counted(ingest_text):
    ds = ingest_text("""
        # tracer: nop
          a-1 [000] .....   1.000001: sched_switch: prev_comm=a prev_pid=1 ==> next_comm=b
          a-1 [000] .....   1.000002: sched_switch: prev_comm=b prev_pid=2 ==> next_comm=a
          a-1 [000] .....   1.000003: mm_page_free: page=0000000000000001 pfn=0x1 order=0
        CPU:1 [LOST 42 EVENTS]
          a-1 [001] .....   1.000004: kmalloc: call_site=foo ptr=0x1
        CPU:0 [LOST EVENTS]
          a-1 [000] .....   1.000005: mm_page_free: page=0000000000000001 pfn=0x2 order=0
        """)
    assert rows(ds, "SELECT pfn FROM events ORDER BY seq") == [(1,), (2,)]
    m = meta(ds)
    assert m["skipped"] == {"total": 3, "by_event": {"sched_switch": 2, "kmalloc": 1}}
    assert m["lost_events"] == {"total": 42, "per_cpu": {"1": 42}, "unknown_count_cpus": [0]}


MALFORMED = """
      a-1 [000] .....   1.000001: mm_page_free: page=0000000000000001 pfn=0x1 order=0
      a-1 [000] .....   1.000002: mm_page_alloc: page=0000000000000001 pfn=0x2 migratetype=0 gfp_flags=GFP_KERNEL
      a-1 [000] .....   1.000003: mm_page_free: page=0000000000000001 pfn=0xzz order=0
      a [000] .....   1.000004: mm_page_free: page=0000000000000001 pfn=0x4 order=0
      a-1 [000] .....   1.000005: mm_page_free: page=0000000000000001 pfn=0x5 order=99999
      a-1 [000] .....   1.000006: mm_page_free: page=0000000000000001 pfn=0x6 order=0
    """


def test_malformed_page_events_counted_with_line_numbers(ingest_text):
    ds = ingest_text(MALFORMED)
    assert rows(ds, "SELECT pfn FROM events ORDER BY seq") == [(1,), (6,)]
    m = meta(ds)["malformed"]
    assert m["total"] == 4
    assert [e.split(":")[0] for e in m["examples"]] == ["line 2", "line 3", "line 4", "line 5"]
    assert "order=99999" in m["examples"][3]


def test_strict_refuses_malformed(ingest_text, tmp_path):
    with pytest.raises(InputError) as e:
        ingest_text(MALFORMED, strict=True)
    assert e.value.where == "line 2" and "malformed page event" in e.value.why
    assert not (tmp_path / "trace.txt.replay").exists()
    assert not list(tmp_path.glob(".trace.txt.replay.tmp-*"))


def test_trace_cmd_report_us_and_ns(ingest_text):
    us = ingest_text("""
        version = 7
        CPU 2 is empty
        cpus=4
                    bash-6300  [001]   441.670898: mm_page_free:         page=0x10a9e6 pfn=0x10a9e6 order=0
                  <idle>-0     [000]   441.670901: mm_page_alloc:        page=(nil) pfn=0x0 order=0 migratetype=0 gfp_flags=GFP_ATOMIC|__GFP_NOWARN
        CPU:1 [12 EVENTS DROPPED]
                    bash-6300  [001]   441.670905: mm_page_alloc:        page=0x10a9e7 pfn=0x10a9e7 order=1 migratetype=0 gfp_flags=GFP_KERNEL
        """, name="report.txt")
    ns = ingest_text("""
        cpus=2
                    bash-6300  [001]   441.670898385: mm_page_free:         page=0x10a9e6 pfn=0x10a9e6 order=0
        CPU:0 [EVENTS DROPPED]
                    bash-6300  [001]   441.670900919: mm_page_free:         page=0x186be1 pfn=0x186be1 order=0
        """, name="report-t.txt")
    assert rows(us, f"SELECT {COLS}, page FROM events ORDER BY seq") == [
        (441670898000, 1, 6300, "bash", "mm_page_free", 0x10A9E6, 0, None, None, None),
        (441670901000, 0, 0, "<idle>", "mm_page_alloc", None, 0, 0, "GFP_ATOMIC|__GFP_NOWARN",
         None),
        (441670905000, 1, 6300, "bash", "mm_page_alloc", 0x10A9E7, 1, 0, "GFP_KERNEL", None),
    ]
    m = meta(us)
    assert m["format"] == "trace-cmd-report" and m["cpus"] == 4 and m["skipped"]["total"] == 0
    assert m["lost_events"]["per_cpu"] == {"1": 12}
    assert rows(ns, "SELECT ts_ns FROM events ORDER BY seq") == [(441670898385,),
                                                                  (441670900919,)]
    m = meta(ns)
    assert m["timestamps"] == "ns" and m["lost_events"]["unknown_count_cpus"] == [0]


def test_trace_cmd_report_3_3_irq_flags(ingest_text):
    # trace-cmd >= 3.3 (1e713bfc) prints the irq-flags token after the CPU
    ds = ingest_text("""
        cpus=2
                    bash-6300  [001] d..2.   441.670898: mm_page_free:         page=0x10a9e6 pfn=0x10a9e6 order=0
        """, fmt="trace-cmd-report")
    assert rows(ds, "SELECT pfn, context FROM events") == [(0x10A9E6, CONTEXT_IRQS_OFF)]


LINES = (
    "            bash-6300    [001] .....   441.670898: mm_page_free: "
    "page=00000000a2226c3b pfn=0x10a9e6 order=0\n"
)


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress,
                                      zstandard.ZstdCompressor().compress],
                         ids=["gzip", "xz", "zstd"])
def test_compressed_inputs(tmp_path, compress):
    from replay.ingestion import ingest

    src = tmp_path / "trace.bin"  # the name says nothing: compression comes from magic bytes
    src.write_bytes(compress(("# tracer: nop\n" + LINES * 3).encode()))
    ds = ingest(src, tmp_path / "out", quiet=True)
    assert rows(ds, "SELECT count(*), min(pfn) FROM events") == [(3, 0x10A9E6)]
    assert meta(ds)["format"] == "ftrace"


def test_non_utf8_comm_is_kept_replaced(ingest_text, tmp_path):
    from replay.ingestion import ingest

    src = tmp_path / "t.txt"
    src.write_bytes(b"       b\xffd-1  [000] .....  1.000001: mm_page_free: page=01 pfn=0x1 order=0\n")
    ds = ingest(src, tmp_path / "out", quiet=True)
    assert rows(ds, "SELECT comm, pfn FROM events") == [("b\ufffdd", 1)]
