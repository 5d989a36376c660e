"""kallsyms parsing and lookup: the perf rules on a few lines (synthetic edge cases).

Real frames are checked against perf script in test_perf_data.py; these lines cover what
the committed samples do not: module symbols, the kernel/module boundary, aliases at one
address, symbol types perf ignores, unprivileged (all-zero) reads, a KASLR slide.
"""

from __future__ import annotations

import numpy as np

from ingest.kallsyms import parse_kallsyms

TEXT = b"""\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81001000 t helper
ffffffff81001000 T helper_alias
ffffffff81001800 r some_rodata
ffffffff81002000 T last_kernel_fn
ffffffffc0000000 t mod_init\t[snd_hda]
ffffffffc0000400 T mod_fn\t[snd_hda]
ffffffffc0002000 T other_fn\t[e1000e]
garbage line
"""


def lookup(table, *addrs):
    idx, off = table.lookup(np.array(addrs, np.uint64))
    return list(zip(table.symbols(idx, off), table.dsos(idx)))


def test_lookup_follows_perf():
    t = parse_kallsyms(TEXT)
    assert lookup(t, 0xFFFFFFFF81000010) == [("_text+0x10", "[kernel.kallsyms]")]
    # aliases: the last listed wins; rodata ('r') is not a perf symbol type
    assert lookup(t, 0xFFFFFFFF81001900) == [("helper_alias+0x900", "[kernel.kallsyms]")]
    # the last kernel symbol before the modules ends a page past its page
    assert lookup(t, 0xFFFFFFFF81002FFF, 0xFFFFFFFF81004000) == [
        ("last_kernel_fn+0xfff", "[kernel.kallsyms]"), (None, None)]
    assert lookup(t, 0xFFFFFFFFC0000404) == [("mod_fn+0x4", "[snd_hda]")]
    assert lookup(t, 0xFFFFFFFFC0002010, 0xFFFFFFFFC0004000) == [
        ("other_fn+0x10", "[e1000e]"), (None, None)]  # the very last: its page + a page
    assert lookup(t, 0x1000) == [(None, None)]
    assert t.address_of("_text") == 0xFFFFFFFF81000000 and t.address_of("nope") is None


def test_relocation_and_unprivileged_reads():
    t = parse_kallsyms(TEXT).relocated(0x200000)
    assert lookup(t, 0xFFFFFFFF81201004) == [("helper_alias+0x4", "[kernel.kallsyms]")]
    hidden = parse_kallsyms(b"0000000000000000 T _text\n0000000000000000 t helper\n")
    assert len(hidden) == 0
    assert lookup(hidden, 0xFFFFFFFF81000000) == [(None, None)]
    assert len(parse_kallsyms(b"")) == 0 and len(parse_kallsyms(b"not kallsyms\n")) == 0
