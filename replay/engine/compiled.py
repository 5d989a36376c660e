"""How the replays' hot loops are compiled: numba, cached on disk, and without numba's
reference counting in functions that allocate no array.

numba counts the references to every array a compiled function binds (an atomic
NRT_incref / NRT_decref per binding). The simulator passes its per-page arrays as one
tuple (`buddy.BuddyState.arrays`) through small functions called for every stream entry,
and that counting took 48 % of a simulated replay's CPU samples (perf, 3 M-event trace).
A function that allocates nothing needs none: `njit_noalloc` compiles it with numba's
`_nrt=False` target option, under which an allocation fails to compile rather than leak.
Functions that allocate (results, scratch arrays) keep `numba.njit(cache=True)`.

`prefetch` asks the CPU to start loading an array element's cache line: the replays know
from the stream which pages the next entries touch, and a loop whose entries each wait
for a few cache misses in its per-page state (131 MB for a 24 GiB machine) runs faster
when those misses overlap.
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: numba target options of a function that allocates no array: no reference counting.
NOALLOC = {"_nrt": False}
#: numba's decorator for compiled functions that allocate no array (see the module's doc).
njit_noalloc = numba.njit(cache=True, **NOALLOC)

#: llvm.prefetch's arguments (LLVM Language Reference, "llvm.prefetch" intrinsic): a read,
#: kept in every cache level (locality 3), a data (not instruction) cache line.
PREFETCH_READ, PREFETCH_LOCALITY, PREFETCH_DATA = 0, 3, 1


@intrinsic
def prefetch(typingctx, arr, index):
    """Start loading the cache line of `arr[index]` (1-D array, no bounds check: a
    prefetch never faults, so any index is safe) and return at once."""
    sig = types.void(arr, index)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                       wraparound=False)
        i32 = ir.IntType(32)
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, PREFETCH_READ),
                          ir.Constant(i32, PREFETCH_LOCALITY), ir.Constant(i32, PREFETCH_DATA)])
        return context.get_dummy_value()

    return sig, codegen
