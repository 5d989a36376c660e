"""The replays' compiled loops count no references (`replay/engine/compiled.py`): the
simulator's per-entry calls spent half their time in numba's atomic reference counts."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from replay.engine.compiled import NOALLOC


def _tuple_walk(**options):
    """A loop calling, per step, a function that takes arrays out of a tuple (the shape of
    the simulator's calls); compiled with `options`, returned with its callee."""

    @numba.njit(**options)
    def callee(t, i):
        a = t[0]
        b = t[1]
        if a[i] > 0:
            b[i] += 1
        return a[i]

    @numba.njit(**options)
    def walk(t, n):
        s = 0.0
        for i in range(n):
            s += callee(t, i % 3)
        return s

    return walk, callee


def _refcount_calls(*dispatchers) -> int:
    llvm = "".join(d.inspect_llvm(d.signatures[0]) for d in dispatchers)
    return llvm.count("call void @NRT_incref") + llvm.count("call void @NRT_decref")


def test_noalloc_functions_compile_without_reference_counts():
    """numba still honours the option: the same code counts references without it (so the
    count is not zero by construction) and none with it."""
    arrays = (np.ones(3), np.zeros(3))
    counted = _tuple_walk()
    plain = _tuple_walk(**NOALLOC)
    assert counted[0](arrays, 6) == plain[0](arrays, 6) == 6.0
    assert _refcount_calls(*counted) > 0
    assert _refcount_calls(*plain) == 0


def test_an_allocation_under_noalloc_fails_to_compile():
    """Without reference counts an array could not be freed: numba refuses to compile an
    allocation under the option instead of leaking it."""

    @numba.njit(**NOALLOC)
    def allocates(n):
        return np.zeros(n).sum()

    with pytest.raises(numba.core.errors.TypingError):
        allocates(3)


def test_prefetch_compiles_to_a_prefetch_and_changes_nothing():
    """`prefetch` emits LLVM's prefetch (so the simulator's loop really asks for its next
    pages) and has no effect on values, even at indices outside the array (it never
    faults)."""
    from replay.engine.compiled import prefetch

    @numba.njit(**NOALLOC)
    def total(a, idx):
        s = 0
        for i in range(len(idx)):
            prefetch(a, idx[i] * 1_000_003)  # far outside: still harmless
            prefetch(a, idx[i])
            s += a[idx[i]]
        return s

    a = np.arange(1000, dtype=np.int32)
    idx = np.array([3, 999, 0, 500], np.int64)
    assert total(a, idx) == 3 + 999 + 0 + 500
    assert "llvm.prefetch" in total.inspect_llvm(total.signatures[0])
    assert "prefetch" in total.inspect_asm(total.signatures[0])
