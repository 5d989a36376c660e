"""measures.free_blocks (which reads page classes a word at a time) against a plain oracle."""

from __future__ import annotations

import numpy as np

from replay.engine.measures import free_blocks


def _oracle(pcls: np.ndarray, lo: int, hi: int, max_order: int) -> tuple[int, np.ndarray]:
    """Free runs from numpy's run boundaries, each cut into the largest aligned blocks."""
    nr = np.zeros(max_order + 1, np.int64)
    free = np.concatenate([[False], pcls[lo:hi] == 0, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(free))
    longest = 0
    for s, e in zip(edges[::2] + lo, edges[1::2] + lo):
        longest = max(longest, int(e - s))
        q = int(s)
        while q < e:
            o = next(o for o in range(max_order, -1, -1)
                     if q % (1 << o) == 0 and q + (1 << o) <= e)
            nr[o] += 1
            q += 1 << o
    return longest, nr


def test_free_blocks_matches_oracle():
    rng = np.random.default_rng(7)
    for _ in range(400):
        n = int(rng.integers(1, 2000))
        pcls = rng.integers(1, 12, n).astype(np.uint8)
        pcls[rng.random(n) < rng.random()] = 0
        a, b = sorted(rng.integers(0, n, 2))
        pcls[a:b] = 0 if rng.random() < 0.5 else pcls[a:b]  # long free runs too
        lo = int(rng.integers(0, n))
        hi = int(rng.integers(lo, n + 1))
        got = np.zeros(11, np.int64)
        longest = free_blocks(pcls, lo, hi, 10, got)
        want_longest, want = _oracle(pcls, lo, hi, 10)
        assert longest == want_longest and (got == want).all()
