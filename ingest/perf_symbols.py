"""Kernel callchain frames → `function+0xoff`, from the best kallsyms the situation allows.

perf.data carries no kernel symbols (perf has written an empty kallsyms into its tracing
data for years); `perf script` symbolizes with the kallsyms of the machine it runs on.
Sources, in order:

1. a kallsyms file the user names (`replay ingest --kallsyms FILE`);
2. the kallsyms text in the file's tracing data, when not empty (old perf);
3. this machine's /proc/kallsyms, only when the file's hostname and os release equal
   this machine's and the addresses are visible (root, or kptr_restrict allows);
4. none: kernel frames keep their addresses, symbol null.

On top of any of these, the symbols the file announces itself (PERF_RECORD_KSYMBOL: BPF
programs, ftrace and kprobe trampolines) name the frames inside their ranges, as perf
does (tools/perf/util/machine.c, machine__process_ksymbol_register: a map and one symbol
spanning the range, its dso named after the symbol).

A KASLR slide between recording and now is undone as perf does: the kernel MMAP record
`[kernel.kallsyms]_text` carries the recorded address of `_text` (its pgoff); the table
is moved so its `_text` lands there. User frames are kept as addresses.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.ftrace_entry import numpy_to_arrow, strings_to_arrow
from ingest.kallsyms import Kallsyms, find_in_ranges, load_kallsyms, parse_kallsyms
from ingest.perf_stacks import CONTEXT_NAMES
from ingest.errors import InputError
from ingest.schema import stack_batch

PROC_KALLSYMS = Path("/proc/kallsyms")
_KERNEL = CONTEXT_NAMES.index("kernel")
_BATCH = 1 << 20


class WithKsymbols:
    """A kallsyms table (or none) under the KSYMBOL ranges of a perf.data: an address in
    a registered range is that symbol (+ offset from its start), others go to kallsyms.

    Stacks carry no time, so a range counts as registered for the whole file; where two
    registrations start at one address the later one names it (perf resolves each frame
    at its sample's time, and drops a range when it is unregistered).
    """

    def __init__(self, table: Kallsyms | None, ksymbols: list[tuple[int, int, str]]) -> None:
        self.table = table
        last = {addr: (length, name) for addr, length, name in ksymbols}
        addrs = sorted(last)
        self.starts = np.array(addrs, np.uint64)
        self.ends = np.array([a + last[a][0] for a in addrs], np.uint64)
        self.names = [last[a][1] for a in addrs]
        self._n = len(table) if table is not None else 0

    def __len__(self) -> int:
        return self._n + len(self.names)

    def lookup(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index or -1, offset); indices past the kallsyms table's are KSYMBOL ranges."""
        if self.table is not None:
            idx, off = self.table.lookup(addrs)
        else:
            idx, off = np.full(len(addrs), -1, np.int64), np.zeros(len(addrs), np.uint64)
        j, j_off = find_in_ranges(self.starts, self.ends, addrs)
        inside = j >= 0
        return np.where(inside, self._n + j, idx), np.where(inside, j_off, off)

    def symbols(self, idx: np.ndarray, off: np.ndarray) -> list[str | None]:
        out = (self.table.symbols(np.where(idx < self._n, idx, -1), off)
               if self.table is not None else [None] * len(idx))
        for k in np.flatnonzero(idx >= self._n).tolist():
            out[k] = f"{self.names[idx[k] - self._n]}+0x{int(off[k]):x}"
        return out

    def dsos(self, idx: np.ndarray) -> list[str | None]:
        out = (self.table.dsos(np.where(idx < self._n, idx, -1))
               if self.table is not None else [None] * len(idx))
        for k in np.flatnonzero(idx >= self._n).tolist():
            out[k] = self.names[idx[k] - self._n]  # perf: the dso is named after the symbol
        return out


@dataclass
class SymbolSource:
    """Where kernel symbols came from, for meta.json."""

    table: Kallsyms | WithKsymbols | None
    source: str | None
    why_none: str | None = None
    relocation: int = 0
    #: distinct KSYMBOL ranges laid over the table
    ksymbols: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kallsyms": self.source}
        if self.why_none:
            out["why_no_symbols"] = self.why_none
        if self.relocation:
            out["relocation"] = self.relocation
        if self.ksymbols:
            out["ksymbols"] = self.ksymbols
        return {**out, **self.stats}


class ThisMachineAhead(threading.Thread):
    """This machine's symbols (source 3), read and parsed in the background while the
    records are walked: the kernel takes ~80 ms to format /proc/kallsyms, parsing ~60 ms."""

    def __init__(self, hostname: str | None, osrelease: str | None) -> None:
        super().__init__(daemon=True)
        self.hostname, self.osrelease = hostname, osrelease
        self._source: SymbolSource | None = None
        self.start()

    def run(self) -> None:
        self._source = _this_machine(self.hostname, self.osrelease)

    def source(self) -> SymbolSource:
        """The result; computed here when the background read failed unexpectedly (so
        that its error is raised in the caller)."""
        self.join()
        return self._source or _this_machine(self.hostname, self.osrelease)


def choose_symbols(path: Path, explicit: Path | None, in_trace: bytes, hostname: str | None,
                   osrelease: str | None, reloc: tuple[str, int] | None,
                   ahead: ThisMachineAhead | None = None,
                   ksymbols: list[tuple[int, int, str]] | None = None) -> SymbolSource:
    """The kernel symbol table to use for a perf.data recorded on `hostname`/`osrelease`
    (`ahead`: this machine's, already being read for that hostname and release;
    `ksymbols`: the (addr, len, name) of the file's KSYMBOL registrations)."""
    if explicit is not None:
        src = SymbolSource(load_kallsyms(explicit), f"file {explicit}")
    elif in_trace.strip():
        src = SymbolSource(parse_kallsyms(in_trace), "tracing data")
    elif ahead is not None:
        src = ahead.source()
    else:
        src = _this_machine(hostname, osrelease)
    if src.table is not None and reloc is not None:
        at = src.table.address_of(reloc[0])
        if at is not None and at != reloc[1]:
            src.relocation = reloc[1] - at
            src.table = src.table.relocated(src.relocation)
    if src.table is not None and len(src.table) == 0:
        raise InputError(path, f"kallsyms from {src.source} has no symbols")
    if ksymbols:
        src.table = WithKsymbols(src.table, ksymbols)
        src.ksymbols = len(src.table.names)
    return src


def _this_machine(hostname: str | None, osrelease: str | None) -> SymbolSource:
    me = os.uname()
    if hostname != me.nodename or osrelease != me.release:
        return SymbolSource(None, None, f"recorded on {hostname or '?'} ({osrelease or '?'}), "
                                        f"not this machine ({me.nodename}, {me.release}); "
                                        "pass --kallsyms")
    try:
        table = parse_kallsyms(PROC_KALLSYMS.read_bytes())
    except OSError as e:
        return SymbolSource(None, None, f"{PROC_KALLSYMS}: {e.strerror}")
    if len(table) == 0:
        return SymbolSource(None, None, f"{PROC_KALLSYMS} hides addresses (not root, "
                                        "kptr_restrict); pass --kallsyms")
    return SymbolSource(table, str(PROC_KALLSYMS))


def stack_batches(frames: dict[str, np.ndarray], symbols: SymbolSource) -> Iterator[pa.RecordBatch]:
    """STACKS batches for the frame columns of `ChainInterner.frames`; fills symbols.stats."""
    n = len(frames["addr"])
    addr = frames["addr"]
    kernel = frames["context"] == _KERNEL
    sym_codes = np.full(n, -1, np.int32)
    sym_dict: list[str] = []
    dso_codes = np.full(n, -1, np.int32)
    dso_dict: list[str] = []
    unknown = int(kernel.sum())
    if symbols.table is not None and kernel.any():
        where = np.flatnonzero(kernel)
        uniq, inv = np.unique(addr[where], return_inverse=True)
        idx, off = symbols.table.lookup(uniq)
        sym_dict = [s or "" for s in symbols.table.symbols(idx, off)]
        sym_codes[where] = np.where(idx >= 0, np.arange(len(uniq)), -1)[inv.ravel()]
        dsos = symbols.table.dsos(idx)
        dso_dict = sorted({d for d in dsos if d is not None})
        code = {d: k for k, d in enumerate(dso_dict)}
        dso_codes[where] = np.array([code.get(d, -1) for d in dsos], np.int32)[inv.ravel()]
        unknown = int((idx[inv.ravel()] < 0).sum())
    sym = pa.DictionaryArray.from_arrays(numpy_to_arrow(np.maximum(sym_codes, 0), sym_codes >= 0),
                                         strings_to_arrow(sym_dict))
    dso = pa.DictionaryArray.from_arrays(numpy_to_arrow(np.maximum(dso_codes, 0), dso_codes >= 0),
                                         strings_to_arrow(dso_dict))
    symbols.stats = {"kernel_frames": int(kernel.sum()), "unknown_kernel_frames": unknown,
                     "frames": n}
    context = pa.DictionaryArray.from_arrays(numpy_to_arrow(frames["context"].astype(np.int32)),
                                             strings_to_arrow(CONTEXT_NAMES))
    for lo in range(0, n, _BATCH):
        hi = min(n, lo + _BATCH)
        yield stack_batch({
            "stack_id": numpy_to_arrow(frames["stack_id"][lo:hi]),
            "depth": numpy_to_arrow(frames["depth"][lo:hi]),
            "context": context[lo:hi],
            "addr": numpy_to_arrow(frames["addr"][lo:hi]),
            "symbol": sym[lo:hi],
            "dso": dso[lo:hi],
        }, hi - lo)
