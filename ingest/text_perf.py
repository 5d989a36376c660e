"""Reader for `perf script` text: default fields, with or without callchains.

A sample line is `comm tid [cpu] time: kmem:event: body` (comm `%16s`, or unpadded when
a callchain follows; tid 5 or 7 wide); with `perf record -g` data each sample is followed
by one line per frame, `<hex addr> <symbol+0xoff | [unknown]> (<dso>)`, innermost first,
and a blank line (docs/formats.md §6.3, perf `builtin-script.c`). Lines are scanned by the
shared compiled scanner; callchains become deduplicated stacks in `stacks.parquet`: a
sample's frame lines are contiguous text, so that text is the stack's key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.lines import LineBlock
from ingest.text_ftrace import EventLineReader
from ingest.text_scan import Scan
from ingest.text_values import strings
from ingest.schema import stack_batch


def frame_context(dso: pa.Array, addr: np.ndarray) -> pa.Array:
    """Where each frame ran: `[kernel.kallsyms]` → kernel, `[guest.kernel.kallsyms]` →
    guest_kernel; other dsos that are not paths (modules, `[unknown]`, BPF programs and
    trampolines, which perf names after their KSYMBOL) → kernel when the address is in the
    upper half (the kernel's on 64-bit Linux), else user, like a path."""
    upper = pa.array(addr >= np.uint64(1 << 63))
    not_path = pc.invert(pc.fill_null(pc.starts_with(dso, "/"), False))
    kernel = pc.or_(pc.fill_null(pc.starts_with(dso, "[kernel."), False),
                    pc.and_(not_path, upper))
    guest = pc.fill_null(pc.starts_with(dso, "[guest.kernel"), False)
    return pc.if_else(guest, "guest_kernel", pc.if_else(kernel, "kernel", "user"))


class PerfScriptReader(EventLineReader):
    """`perf script` output of kmem tracepoints (perf record -e kmem:... [-g])."""

    format = "perf-script"
    LOSS = None
    IGNORE = r"^\s*(#|$)"
    FRAMES = True
    CONTINUATION = b"\t"

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self._stack_ids: dict[bytes, int] = {}  # digest of a callchain's text -> stack_id
        self._frames: list[pa.RecordBatch] = []

    def columns(self, block: LineBlock, sc: Scan, rows: np.ndarray) -> dict[str, pa.Array]:
        cols = super().columns(block, sc, rows)
        nframes = sc.nframes[rows]
        has = nframes > 0
        if has.any():
            stack_id = np.zeros(len(rows), np.int64)
            stack_id[has] = self._stack_ids_of(block, sc, rows[has])
            cols["stack_id"] = pa.array(stack_id, mask=~has)
        return cols

    def _stack_ids_of(self, block: LineBlock, sc: Scan, samples: np.ndarray) -> np.ndarray:
        """Stack ids of samples with callchains; frames of stacks not seen before are kept."""
        first = sc.first_frame[samples]
        last = first + sc.nframes[samples] - 1
        keys = strings(block.data, block.starts[first], block.ends[last]).dictionary_encode()
        codes = keys.indices.to_numpy()
        _, where = np.unique(codes, return_index=True)  # first sample of each distinct key
        ids = np.empty(len(keys.dictionary), np.int64)
        new_ids, new_samples = [], []
        for u, key in enumerate(keys.dictionary.to_pylist()):
            digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
            sid = self._stack_ids.get(digest)
            if sid is None:
                sid = self._stack_ids[digest] = len(self._stack_ids)
                new_ids.append(sid)
                new_samples.append(samples[where[u]])
            ids[u] = sid
        if new_ids:
            self._frames.append(self._frame_batch(block, sc, np.array(new_samples),
                                                  np.array(new_ids, np.int64)))
        return ids[codes]

    def _frame_batch(self, block: LineBlock, sc: Scan, samples: np.ndarray,
                     ids: np.ndarray) -> pa.RecordBatch:
        counts = sc.nframes[samples].astype(np.int64)
        total = int(counts.sum())
        begin = np.repeat(np.cumsum(counts) - counts, counts)
        depth = np.arange(total) - begin
        lines = np.repeat(sc.first_frame[samples], counts) + depth
        buf = block.data
        symbol = strings(buf, sc.sym_s[lines], sc.sym_e[lines])
        symbol = pc.if_else(pc.equal(symbol, "[unknown]"), pa.scalar(None, pa.string()), symbol)
        has_dso = sc.dso_s[lines] >= 0
        dso = strings(buf, sc.dso_s[lines], sc.dso_e[lines], has_dso)
        return stack_batch(
            {
                "stack_id": np.repeat(ids, counts),
                "depth": depth.astype(np.int16),
                "context": frame_context(dso, sc.addr[lines]),
                "addr": sc.addr[lines],
                "symbol": symbol,
                "dso": dso,
            },
            total,
        )

    def stacks(self) -> Iterator[pa.RecordBatch]:
        return iter(self._frames)
