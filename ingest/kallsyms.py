"""Kernel symbol tables (`/proc/kallsyms` text) and address → `function+0xoff` lookup.

The lookup follows what `perf script` prints for kernel callchain frames
(tools/perf/util/symbol.c, dso__load_kallsyms): only text, weak, data and bss symbols
(types T W D B, either case) are kept; a symbol ends where the next one starts, except
the last kernel symbol before module symbols and the very last symbol, which end at the
next page boundary plus a page; of several symbols at one address the last listed wins
(perf keeps the one with a non-zero length).

Parsing is vectorized over the raw bytes (a kallsyms has 100,000+ lines): lines are
`address type name[\t[module]]` with a fixed address width; names are sliced out only
for the symbols a lookup asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.source import read_bounded
from ingest.errors import InputError

#: the largest kallsyms read: a distribution kernel with every module loaded lists ~20 MB
KALLSYMS_LIMIT = 256 << 20

_PAGE = np.uint64(4096)
_HEX = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i
_PERF_TYPES = np.zeros(256, bool)
_PERF_TYPES[list(b"TtWwDdBb")] = True


@dataclass
class Kallsyms:
    """Sorted symbol starts and ends, where each name is in the text, and its module."""

    text: bytes
    starts: np.ndarray  # uint64, ascending
    ends: np.ndarray  # uint64
    name_off: np.ndarray  # int64 offsets of the names in `text`
    name_len: np.ndarray  # int64
    module: np.ndarray  # int32 index into module_names, -1 for vmlinux symbols
    module_names: list[str]

    def __len__(self) -> int:
        return len(self.starts)

    def address_of(self, name: str) -> int | None:
        """Address of the symbol `name` in the text (first listed), or None."""
        m = re.search(rb"^([0-9a-fA-F]+) \S " + re.escape(name.encode()) + rb"$", self.text,
                      re.M)
        return int(m.group(1), 16) if m else None

    def relocated(self, delta: int) -> Kallsyms:
        """The table with every address moved by `delta` (a KASLR slide)."""
        d = np.uint64(delta % (1 << 64))
        return Kallsyms(self.text, self.starts + d, self.ends + d, self.name_off,
                        self.name_len, self.module, self.module_names)

    def lookup(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For uint64 addresses: (symbol index or -1, offset into that symbol)."""
        return find_in_ranges(self.starts, self.ends, addrs)

    def symbols(self, idx: np.ndarray, off: np.ndarray) -> list[str | None]:
        """`name+0xoff` for each (index, offset) as perf script prints it; None if idx < 0."""
        text, starts, lens = self.text, self.name_off, self.name_len
        return [None if i < 0 else
                f"{text[starts[i] : starts[i] + lens[i]].decode('utf-8', 'replace')}+0x{o:x}"
                for i, o in zip(idx.tolist(), off.tolist())]

    def dsos(self, idx: np.ndarray) -> list[str | None]:
        """perf's dso name of each symbol: `[kernel.kallsyms]` or `[module]`; None if idx < 0."""
        if not len(self):
            return [None] * len(idx)
        mods = self.module[np.maximum(idx, 0)].tolist()
        return [None if i < 0 else "[kernel.kallsyms]" if m < 0 else f"[{self.module_names[m]}]"
                for i, m in zip(idx.tolist(), mods)]


def find_in_ranges(starts: np.ndarray, ends: np.ndarray,
                   addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For uint64 addresses: (index of the range [starts[i], ends[i]) holding it or -1,
    offset into that range); `starts` ascending, the ranges not overlapping."""
    i = np.searchsorted(starts, addrs, side="right").astype(np.int64) - 1
    if not len(starts):
        return i, np.zeros(len(addrs), np.uint64)
    safe = np.maximum(i, 0)
    found = (i >= 0) & (addrs < ends[safe])
    return np.where(found, i, -1), np.where(found, addrs - starts[safe], 0).astype(np.uint64)


def parse_kallsyms(text: bytes) -> Kallsyms:
    """A symbol table from kallsyms text; lines of another shape are ignored."""
    b = np.frombuffer(text, np.uint8)
    ends = np.flatnonzero(b == ord("\n"))
    if len(b) and b[-1] != ord("\n"):
        ends = np.append(ends, len(b))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    width = text.find(b" ")
    if width <= 0 or width > 16 or not len(ends):
        return _table(text, *(np.zeros(0, t) for t in (np.uint64, np.int64, np.int64)),
                      np.zeros(0, np.int32), [])
    ok = ends - starts >= width + 4
    s = starts[ok]
    ok_shape = (b[s + width] == ord(" ")) & (b[s + width + 2] == ord(" ")) \
        & _PERF_TYPES[b[s + width + 1]]
    s, e = s[ok_shape], ends[ok][ok_shape]
    digits = _HEX[b[s[:, None] + np.arange(width)]]
    good = (digits != 255).all(axis=1)
    s, e, digits = s[good], e[good], digits[good].astype(np.uint64)
    shifts = np.arange(4 * (width - 1), -1, -4, dtype=np.uint64)
    addrs = np.bitwise_or.reduce(digits << shifts, axis=1) if len(s) else np.zeros(0, np.uint64)
    name_off = s + width + 3
    tabs = np.flatnonzero(b == ord("\t"))
    k = np.searchsorted(tabs, name_off)
    tab = np.where(k < len(tabs), tabs[np.minimum(k, len(tabs) - 1)], len(b)) if len(tabs) \
        else np.full(len(s), len(b))
    in_module = tab < e
    name_end = np.where(in_module, tab, e)
    module = np.full(len(s), -1, np.int32)
    names: dict[bytes, int] = {}
    for i in np.flatnonzero(in_module).tolist():  # `\t[module]`: module lines only
        mod = text[tab[i] + 1 : e[i]].strip().strip(b"[]")
        module[i] = names.setdefault(mod, len(names))
    return _table(text, addrs, name_off, name_end - name_off, module,
                  [m.decode("utf-8", "replace") for m in names])


def _table(text: bytes, addrs: np.ndarray, name_off: np.ndarray, name_len: np.ndarray,
           module: np.ndarray, module_names: list[str]) -> Kallsyms:
    """Sort by address (file order kept among equals, the last of a run wins), drop the
    all-zero addresses of a kallsyms read without privilege, and compute ends."""
    order = np.argsort(addrs, kind="stable")
    order = order[addrs[order] != 0]
    sorted_addrs = addrs[order]
    last_of_run = np.ones(len(order), bool)
    last_of_run[:-1] = sorted_addrs[:-1] != sorted_addrs[1:]
    order = order[last_of_run]
    starts = addrs[order]
    return Kallsyms(text, starts, _symbol_ends(starts, module[order] >= 0), name_off[order],
                    name_len[order], module[order], module_names)


def _symbol_ends(starts: np.ndarray, in_module: np.ndarray) -> np.ndarray:
    """perf's symbols__fixup_end for kallsyms: the next start, or a page past the boundary."""
    ends = np.empty_like(starts)
    if len(starts) == 0:
        return ends
    ends[:-1] = starts[1:]
    boundary = np.zeros(len(starts), bool)
    boundary[:-1] = in_module[:-1] != in_module[1:]
    page_up = ((starts + _PAGE + _PAGE - np.uint64(1)) // _PAGE) * _PAGE
    ends[boundary] = page_up[boundary]
    ends[-1] = ((starts[-1] + _PAGE - np.uint64(1)) // _PAGE) * _PAGE + _PAGE
    return ends


def load_kallsyms(path: Path) -> Kallsyms:
    """The symbol table in a kallsyms file (gzip/zstd/xz accepted)."""
    try:
        text = read_bounded(path, KALLSYMS_LIMIT, "a kallsyms file")
    except OSError as e:
        raise InputError(path, f"cannot be read: {e.strerror}") from None
    table = parse_kallsyms(text)
    if len(table) == 0:
        raise InputError(path, "no kernel symbols (expected /proc/kallsyms lines with "
                               "non-zero addresses)")
    return table
