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

from ingest.source import open_stream
from ingest.text_values import parse_hex
from replay.errors import InputError

_LINE = r"^(?P<addr>[0-9a-fA-F]{1,16})\s+(?P<type>[TtWwDdBb])\s+(?P<name>\S+)(?:\s+\[(?P<mod>[^\]]+)\])?"
_PAGE = np.uint64(4096)


@dataclass
class Kallsyms:
    """Sorted symbol starts and ends, their names and modules ("" for the kernel)."""

    starts: np.ndarray  # uint64, ascending
    ends: np.ndarray  # uint64
    names: pa.Array  # string
    modules: pa.Array  # string, "" for vmlinux symbols

    def __len__(self) -> int:
        return len(self.starts)

    def address_of(self, name: str) -> int | None:
        """Start address of the kernel symbol `name`, or None."""
        hit = np.flatnonzero(pc.equal(self.names, name).to_numpy(zero_copy_only=False))
        return int(self.starts[hit[0]]) if len(hit) else None

    def relocated(self, delta: int) -> Kallsyms:
        """The table with every address moved by `delta` (a KASLR slide)."""
        d = np.uint64(delta % (1 << 64))
        return Kallsyms(self.starts + d, self.ends + d, self.names, self.modules)

    def lookup(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For uint64 addresses: (symbol index or -1, offset into that symbol)."""
        i = np.searchsorted(self.starts, addrs, side="right").astype(np.int64) - 1
        safe = np.maximum(i, 0)
        found = (i >= 0) & (addrs < self.ends[safe]) if len(self) else np.zeros(len(addrs), bool)
        idx = np.where(found, i, -1)
        off = np.where(found, addrs - self.starts[safe] if len(self) else 0, 0)
        return idx, off.astype(np.uint64)


def parse_kallsyms(text: bytes) -> Kallsyms:
    """A symbol table from kallsyms text (`address type name [module]` lines)."""
    lines = pc.split_pattern(pa.array([text], pa.binary()), b"\n").flatten()
    parts = pc.extract_regex(lines.cast(pa.string(), safe=False), _LINE)
    parts = parts.filter(parts.is_valid())
    addrs, ok = parse_hex(pc.struct_field(parts, "addr"))
    keep = ok & (addrs != 0)  # all-zero addresses: kallsyms read without privilege
    names = pc.struct_field(parts, "name").filter(pa.array(keep))
    modules = pc.struct_field(parts, "mod").filter(pa.array(keep)).fill_null("")
    addrs = addrs[keep]
    # stable sort keeps file order among equal addresses; the last of each run wins
    order = np.argsort(addrs, kind="stable")
    addrs = addrs[order]
    last_of_run = np.ones(len(addrs), bool)
    last_of_run[:-1] = addrs[:-1] != addrs[1:]
    order = order[last_of_run]
    starts = addrs[last_of_run]
    names = names.take(pa.array(order))
    modules = modules.take(pa.array(order))
    ends = _symbol_ends(starts, (pc.not_equal(modules, "")).to_numpy(zero_copy_only=False))
    return Kallsyms(starts, ends, names, modules)


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


def format_symbols(table: Kallsyms, idx: np.ndarray, off: np.ndarray) -> pa.Array:
    """`name+0xoff` strings (null where idx is -1), as perf script prints them."""
    known = idx >= 0
    names = table.names.take(pa.array(np.where(known, idx, 0))) if len(table) else \
        pa.nulls(len(idx), pa.string())
    hexes = pa.array([f"+0x{o:x}" for o in off.tolist()], pa.string())
    out = pc.binary_join_element_wise(names, hexes, "")
    return pc.if_else(pa.array(known), out, pa.scalar(None, pa.string()))
