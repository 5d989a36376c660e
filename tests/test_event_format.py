"""Event format texts, gfp flag tables and header_page, as trace.dat and perf.data carry them."""

from __future__ import annotations

import pytest

from ingest.event_format import (
    eval_c_constant,
    flag_table,
    parse_format,
    parse_header_page,
)
from ingest.tracedat_file import read_layout
from tests.conftest import SAMPLES

# Linux 2.6.32 (include/trace/events/kmem.h then): a page pointer, a 4-byte gfp_t, the
# common_lock_depth field, no `signed:` items, gfp names without `__` and 0 = GFP_NOWAIT.
OLD_ALLOC = """name: mm_page_alloc
ID: 287
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;
\tfield:int common_pid;\toffset:4;\tsize:4;
\tfield:int common_lock_depth;\toffset:8;\tsize:4;

\tfield:struct page * page;\toffset:12;\tsize:8;
\tfield:unsigned int order;\toffset:20;\tsize:4;
\tfield:gfp_t gfp_flags;\toffset:24;\tsize:4;
\tfield:int migratetype;\toffset:28;\tsize:4;

print fmt: "page=%p pfn=%lu order=%d migratetype=%d gfp_flags=%s", REC->page, \
page_to_pfn(REC->page), REC->order, REC->migratetype, (REC->gfp_flags) ? \
__print_flags(REC->gfp_flags, "|", {(unsigned long)(((gfp_t)0x10u) | ((gfp_t)0x40u) | \
((gfp_t)0x80u)), "GFP_KERNEL"}, {(unsigned long)((gfp_t)0x20u), "GFP_HIGH"}, \
{(unsigned long)((gfp_t)0x10u), "GFP_WAIT"}) : "GFP_NOWAIT"
"""


@pytest.fixture(scope="module")
def alloc_618():
    """mm_page_alloc as Linux 6.18 described it in the real v7 sample."""
    formats = read_layout(SAMPLES / "ftrace-thp.dat").formats
    return next(f for f in formats if f.name == "mm_page_alloc")


def test_fields_of_a_real_format(alloc_618):
    f = alloc_618
    assert (f.system, f.id) == ("kmem", 653)
    assert [(x.name, x.offset, x.size, x.signed) for x in f.fields.values()] == [
        ("common_type", 0, 2, False), ("common_flags", 2, 1, False),
        ("common_preempt_count", 3, 1, False), ("common_pid", 4, 4, True),
        ("pfn", 8, 8, False), ("order", 16, 4, False), ("gfp_flags", 24, 8, False),
        ("migratetype", 32, 4, True),
    ]
    assert f.print_fmt.startswith('"page=%p pfn=0x%lx order=%d')


@pytest.mark.parametrize("value, text", [
    (0x140CCA, "GFP_HIGHUSER_MOVABLE|__GFP_COMP"),
    (0x152CCA, "GFP_HIGHUSER_MOVABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP"),
    (0xCC0, "GFP_KERNEL"),
    (0x800, "__GFP_KSWAPD_RECLAIM"),
    (0, "none"),
    (0xCC0 | 1 << 40, "GFP_KERNEL|0x10000000000"),
])
def test_gfp_names_like_the_kernel(alloc_618, value, text):
    """Composite masks first, each bit used once, leftovers in hex (trace_print_flags_seq)."""
    table = flag_table(alloc_618.print_fmt)
    assert table.complete and table.zero == "none"
    assert table.render(value) == text


def test_old_format():
    f = parse_format(OLD_ALLOC, "kmem")
    assert f.field("pfn") is None and f.field("page").offset == 12
    assert f.field("common_pid").signed and not f.field("order").signed
    assert f.field("gfp_flags").size == 4
    table = flag_table(f.print_fmt)
    assert table.zero == "GFP_NOWAIT"
    assert [table.render(v) for v in (0, 0xD0, 0x30, 0x210)] == [
        "GFP_NOWAIT", "GFP_KERNEL", "GFP_HIGH|GFP_WAIT", "GFP_WAIT|0x200"]


def test_unresolved_enum_names_give_raw_hex():
    """6.10-6.12 leaked ___GFP_*_BIT names into the table (fixed by 60295b944ff6)."""
    fmt = ('"gfp_flags=%s", (REC->gfp_flags) ? __print_flags(REC->gfp_flags, "|", '
           '{( unsigned long)(( gfp_t)((((1UL))) << (___GFP_IO_BIT))), "__GFP_IO"}, '
           '{( unsigned long)(( gfp_t)((((1UL))) << (7))), "__GFP_FS"}) : "none"')
    table = flag_table(fmt)
    assert not table.complete
    assert table.render(0x140CCA) == "0x140cca"


def test_dynamic_and_array_fields():
    text = ("name: x\nID: 7\nformat:\n\tfield:__data_loc char[] name;\toffset:8;\tsize:4;"
            "\tsigned:0;\n\tfield:char comm[16];\toffset:12;\tsize:16;\tsigned:0;\n"
            "\tfield:__rel_loc u8[] buf;\toffset:28;\tsize:4;\tsigned:0;\n")
    f = parse_format(text)
    assert (f.field("name").dynamic, f.field("name").count) == ("__data_loc", 0)
    assert (f.field("comm").count, f.field("comm").elem_size) == (16, 1)
    assert f.field("buf").dynamic == "__rel_loc"


@pytest.mark.parametrize("expr, value", [
    ("0x10u", 16), ("42UL", 42), ("( unsigned long)(( gfp_t)((((1UL))) << (24)))", 1 << 24),
    ("((1UL << 10) | (1UL << 11)) & ~(1UL << 10)", 1 << 11), ("~0x3 & 0xff", 0xFC),
    ("1ULL << 63", 1 << 63), ("(( gfp_t)0)", 0), ("___GFP_IO_BIT", None), ("(1 |", None),
])
def test_c_constants(expr, value):
    assert eval_c_constant(expr) == value


def test_header_page():
    text64 = ("\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
              "\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n"
              "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
              "\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n")
    hp = parse_header_page(text64)
    assert (hp.commit_size, hp.data_offset, hp.subbuf_size) == (8, 16, 4096)
    text32 = text64.replace("offset:8;\tsize:8", "offset:8;\tsize:4").replace(
        "offset:16;\tsize:4080", "offset:12;\tsize:16372")
    hp = parse_header_page(text32)
    assert (hp.commit_size, hp.data_offset, hp.subbuf_size) == (4, 12, 16384)
