"""Callchains → deduplicated stacks: `stack_id` per sample, frames per distinct stack.

`ChainInterner` hashes each sample's u64 callchain in compiled code and looks it up in
an open-addressing table whose entries point into a pool of the distinct chains seen so
far (compared word by word, so a hash collision can never merge two stacks). Stack ids
count distinct chains in the order they first appear. `frames` then turns the pool into
rows of ingest.schema.STACKS: context markers (PERF_CONTEXT_KERNEL, _USER, ...) set the
`context` of the frames after them and are not frames themselves; depth 0 is the
innermost frame, as perf stores it.
"""

from __future__ import annotations

import numpy as np

from ingest.kernels import helper, kernel
from ingest.perf_abi import CALLCHAIN_CONTEXTS, CONTEXT_MAX
from ingest.perf_walk import uint_at

#: context names by code; code 0 = no marker seen yet
CONTEXT_NAMES = ("unknown",) + tuple(CALLCHAIN_CONTEXTS.values())
_MARKERS = np.array(list(CALLCHAIN_CONTEXTS), dtype=np.uint64)
_CONTEXT_MAX = np.uint64(CONTEXT_MAX)
_EMPTY = np.int64(-1)


@helper()
def _hash(buf, off, nr, big):
    h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(nr)
    for k in range(nr):
        h ^= uint_at(buf, off + 8 * k, 8, big)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
    return h


@kernel("u1_ro, b1, i8[::1], i8[::1], i8[::1], u8[::1], i8[::1], i8[::1], u8[::1], i8[::1], "
        "i8[::1]")
def _intern(buf, big, cc_off, cc_nr, slots, hashes, starts, lens, pool, counts, out):
    """Stack id of every chain (-1 where cc_off < 0); grows pool/starts via `counts`."""
    mask = np.uint64(slots.shape[0] - 1)
    for i in range(cc_off.shape[0]):
        off = cc_off[i]
        if off < 0:
            out[i] = -1
            continue
        nr = cc_nr[i]
        h = _hash(buf, off, nr, big)
        s = h & mask
        while True:
            sid = slots[s]
            if sid == _EMPTY:
                sid = counts[0]
                slots[s] = sid
                hashes[sid] = h
                starts[sid] = counts[1]
                lens[sid] = nr
                for k in range(nr):
                    pool[counts[1] + k] = uint_at(buf, off + 8 * k, 8, big)
                counts[1] += nr
                counts[0] += 1
                break
            if hashes[sid] == h and lens[sid] == nr:
                base = starts[sid]
                same = True
                for k in range(nr):
                    if pool[base + k] != uint_at(buf, off + 8 * k, 8, big):
                        same = False
                        break
                if same:
                    break
            s = (s + np.uint64(1)) & mask
        out[i] = sid


@kernel("u8[::1], i8, i8[::1]")
def _rehash(hashes, n, slots):
    mask = np.uint64(slots.shape[0] - 1)
    for sid in range(n):
        s = hashes[sid] & mask
        while slots[s] != _EMPTY:
            s = (s + np.uint64(1)) & mask
        slots[s] = sid


@kernel("i8[::1], i8[::1], u8[::1], i8, u8[::1], i8[::1], i2[::1], i1[::1], u8[::1]")
def _frames(starts, lens, pool, n, markers, out_stack, out_depth, out_ctx, out_addr):
    """Rows of frames for stacks 0..n-1; returns how many were written."""
    r = 0
    for sid in range(n):
        ctx = 0
        depth = 0
        for k in range(lens[sid]):
            w = pool[starts[sid] + k]
            if w >= _CONTEXT_MAX:
                ctx = 0
                for m in range(markers.shape[0]):
                    if markers[m] == w:
                        ctx = m + 1
                continue
            out_stack[r] = sid
            out_depth[r] = depth
            out_ctx[r] = ctx
            out_addr[r] = w
            depth += 1
            r += 1
    return r


def _grown(a: np.ndarray, need: int) -> np.ndarray:
    if need <= len(a):
        return a
    b = np.empty(max(need, 2 * len(a)), a.dtype)
    b[: len(a)] = a
    return b


class ChainInterner:
    """Distinct callchains seen so far; memory grows with distinct stacks only."""

    def __init__(self) -> None:
        self.slots = np.full(1024, _EMPTY, np.int64)
        self.hashes = np.zeros(512, np.uint64)
        self.starts = np.zeros(512, np.int64)
        self.lens = np.zeros(512, np.int64)
        self.pool = np.zeros(8192, np.uint64)
        self.counts = np.zeros(2, np.int64)  # distinct stacks, pool words used

    @property
    def n_stacks(self) -> int:
        return int(self.counts[0])

    def intern(self, buf: np.ndarray, big: bool, cc_off: np.ndarray,
               cc_nr: np.ndarray) -> np.ndarray:
        """Stack ids (int64, -1 for no callchain) of the chains at `cc_off` in `buf`."""
        n_new = len(cc_off)
        words = int(cc_nr[cc_off >= 0].sum())
        stacks = self.n_stacks + n_new
        self.hashes = _grown(self.hashes, stacks)
        self.starts = _grown(self.starts, stacks)
        self.lens = _grown(self.lens, stacks)
        self.pool = _grown(self.pool, int(self.counts[1]) + words)
        if 2 * stacks > len(self.slots):
            size = len(self.slots)
            while 2 * stacks > size:
                size *= 2
            self.slots = np.full(size, _EMPTY, np.int64)
            _rehash(self.hashes, self.n_stacks, self.slots)
        out = np.empty(n_new, np.int64)
        _intern(buf, big, cc_off.astype(np.int64), cc_nr.astype(np.int64), self.slots,
                self.hashes, self.starts, self.lens, self.pool, self.counts, out)
        return out

    def frames(self) -> dict[str, np.ndarray]:
        """Columns stack_id, depth, context (code into CONTEXT_NAMES), addr of all frames."""
        n = self.n_stacks
        words = int(self.counts[1])
        cols = {
            "stack_id": np.empty(words, np.int64),
            "depth": np.empty(words, np.int16),
            "context": np.empty(words, np.int8),
            "addr": np.empty(words, np.uint64),
        }
        r = _frames(self.starts, self.lens, self.pool, n, _MARKERS, cols["stack_id"],
                    cols["depth"], cols["context"], cols["addr"])
        return {k: v[:r] for k, v in cols.items()}
