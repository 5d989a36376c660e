"""Kernel symbol tables (`/proc/kallsyms` text) and address → `function+0xoff` lookup.

The lookup follows what `perf script` prints for kernel callchain frames
(tools/perf/util/symbol.c, dso__load_kallsyms): only text, weak, data and bss symbols
(types T W D B, either case) are kept; a symbol ends where the next one starts, except
the last kernel symbol before module symbols and the very last symbol, which end at the
next page boundary plus a page; of several symbols at one address the last listed wins
(perf keeps the one with a non-zero length). Parsing is vectorized with Arrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.ftrace_entry import numpy_to_arrow, strings_to_arrow
from ingest.source import open_stream
from replay.errors import InputError

_LINE = r"^(?P<addr>[0-9a-fA-F]{1,16})\s+(?P<type>[TtWwDdBb])\s+(?P<name>\S+)(?:\s+\[(?P<mod>[^\]]+)\])?"
_PAGE = np.uint64(4096)


@dataclass
class Kallsyms:
    """Sorted symbol starts and ends, their names, and the module of each."""

    starts: np.ndarray  # uint64, ascending
    ends: np.ndarray  # uint64
    names: pa.Array  # string
    module: np.ndarray  # int32 index into module_names, -1 for vmlinux symbols
    module_names: list[str]

    def __len__(self) -> int:
        return len(self.starts)

    def address_of(self, name: str) -> int | None:
        """Start address of the symbol `name`, or None."""
        try:
            return int(self.starts[self.names.to_pylist().index(name)])
        except ValueError:
            return None

    def relocated(self, delta: int) -> Kallsyms:
        """The table with every address moved by `delta` (a KASLR slide)."""
        d = np.uint64(delta % (1 << 64))
        return Kallsyms(self.starts + d, self.ends + d, self.names, self.module,
                        self.module_names)

    def lookup(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For uint64 addresses: (symbol index or -1, offset into that symbol)."""
        if not len(self):
            return np.full(len(addrs), -1, np.int64), np.zeros(len(addrs), np.uint64)
        i = np.searchsorted(self.starts, addrs, side="right").astype(np.int64) - 1
        safe = np.maximum(i, 0)
        found = (i >= 0) & (addrs < self.ends[safe])
        return np.where(found, i, -1), np.where(found, addrs - self.starts[safe], 0).astype(
            np.uint64)

    def symbols(self, idx: np.ndarray, off: np.ndarray) -> list[str | None]:
        """`name+0xoff` for each (index, offset) as perf script prints it; None if idx < 0."""
        names = self.names.take(numpy_to_arrow(np.maximum(idx, 0))).to_pylist()
        return [f"{n}+0x{o:x}" if i >= 0 else None
                for n, i, o in zip(names, idx.tolist(), off.tolist())]

    def dsos(self, idx: np.ndarray) -> list[str | None]:
        """perf's dso name of each symbol: `[kernel.kallsyms]` or `[module]`; None if idx < 0."""
        mods = self.module[np.maximum(idx, 0)].tolist()
        return [None if i < 0 else "[kernel.kallsyms]" if m < 0 else f"[{self.module_names[m]}]"
                for i, m in zip(idx.tolist(), mods)]


def parse_kallsyms(text: bytes) -> Kallsyms:
    """A symbol table from kallsyms text (`address type name [module]` lines)."""
    one = pa.Array.from_buffers(pa.binary(), 1, [None, pa.py_buffer(np.array([0, len(text)],
                                np.int32)), pa.py_buffer(text)])
    lines = pc.split_pattern(one, b"\n").flatten()
    parts = pc.extract_regex(lines.cast(pa.string(), safe=False), _LINE)
    parts = parts.filter(parts.is_valid())
    addrs = np.array([int(a, 16) for a in pc.struct_field(parts, "addr").to_pylist()],
                     np.uint64)
    mods = pc.dictionary_encode(pc.struct_field(parts, "mod"))
    module = np.where(mods.indices.is_valid().to_numpy(zero_copy_only=False),
                      mods.indices.to_numpy(zero_copy_only=False), -1).astype(np.int32)
    # stable sort keeps file order among equal addresses; the last of each run wins;
    # all-zero addresses (kallsyms read without privilege) are dropped
    order = np.argsort(addrs, kind="stable")
    order = order[addrs[order] != 0]
    addrs = addrs[order]
    last_of_run = np.ones(len(addrs), bool)
    last_of_run[:-1] = addrs[:-1] != addrs[1:]
    order = order[last_of_run]
    starts = addrs[last_of_run]
    names = pc.struct_field(parts, "name").take(numpy_to_arrow(order))
    module = module[order]
    return Kallsyms(starts, _symbol_ends(starts, module >= 0), names, module,
                    mods.dictionary.to_pylist())


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
        with open_stream(path) as s:
            text = s.read()
    except OSError as e:
        raise InputError(path, f"cannot be read: {e.strerror}") from None
    table = parse_kallsyms(text)
    if len(table) == 0:
        raise InputError(path, "no kernel symbols (expected /proc/kallsyms lines with "
                               "non-zero addresses)")
    return table
