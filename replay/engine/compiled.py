"""How the replays' hot loops are compiled: numba, cached on disk, and without numba's
reference counting in functions that allocate no array.

numba counts the references to every array a compiled function binds (an atomic
NRT_incref / NRT_decref per binding). The simulator passes its per-page arrays as one
tuple (`buddy.BuddyState.arrays`) through small functions called for every stream entry,
and that counting took 48 % of a simulated replay's CPU samples (perf, 3 M-event trace).
A function that allocates nothing needs none: `njit_noalloc` compiles it with numba's
`_nrt=False` target option, under which an allocation fails to compile rather than leak.
Functions that allocate (results, scratch arrays) keep `numba.njit(cache=True)`.
"""

from __future__ import annotations

import numba

#: numba target options of a function that allocates no array: no reference counting.
NOALLOC = {"_nrt": False}
#: numba's decorator for compiled functions that allocate no array (see the module's doc).
njit_noalloc = numba.njit(cache=True, **NOALLOC)
