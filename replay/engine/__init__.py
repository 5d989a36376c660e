"""The replay engine (docs/design.md §6, docs/engine.md): the trace replayed through a
model of the buddy allocator of any max order N, with memarea serving what is above N.

Modules, one job each, in the order a sweep uses them: `options` (what changes results),
`stream` (events into the engine's operations), `layout` (zones), `world` (the managed
memory at trace start), `context` (what every configuration shares), `buddy` (the
simulated buddy allocator), `memarea` (the contiguous-area searches and policies),
`observed` and `simulated` (the two modes), `sweep` (configurations in a worker pool),
`fidelity` (the baseline against the kernel's snapshots), `tables` (the output tables),
`simulate` (`replay simulate`), `summary` (what it prints), `measures` (the kernel's
fragmentation indices), `validate` (plain-Python invariant checks).
"""
