"""The replay engine (DESIGN §6): observed reconstruction, buddy simulator, memarea model.

Modules, one job each: `layout` (zones and pfn ranges), `stream` (events into numpy
arrays), `observed` (page-exact occupancy replay), `buddy` (the simulated buddy allocator),
`memarea` (the contiguous-area searches and policies), `measures` (the kernel's
fragmentation indices), `validate` (plain-Python invariant checks), `simulate` (the sweep
driver writing `sim/*.parquet`).
"""
