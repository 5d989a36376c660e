"""What the kmem page tracepoints say, per kernel (include/trace/events/kmem.h).

- A failed allocation: `mm_page_alloc` with no page. Since 4.1 the events carry the page
  frame number and a failure prints `pfn=0` with a NULL page (older: `pfn=-1`); the
  readers store it as a null `pfn`. Binary traces of kernels before 4.1 carry only the
  `struct page *`: a NULL pointer is a failure, any other pointer a success whose pfn is
  unknown (such an event cannot be placed in memory: the engine counts and skips it).
- `mm_page_alloc_zone_locked`: the buddy allocator handed out a block under the zone
  lock (to a caller, or to a per-CPU list). Since 5.19 it is emitted in
  __rmqueue_smallest() with `percpu_refill = pcp_allowed_order(order) && migratetype <
  MIGRATE_PCPTYPES` (10e0f7530205, "mm/page_alloc: fix tracepoint
  mm_page_alloc_zone_locked()"); before, from __rmqueue(), printing `order == 0`.
- `mm_page_pcpu_drain`: a page left a per-CPU list for the buddy allocator
  (free_pcppages_bulk()).
- `mm_page_free_batched` repeats `mm_page_free` for list frees since 2.6.34.
- `mm_page_alloc_extfrag` (since 2.6.32, Mel Gorman's "tracing, page-allocator: add
  trace event for page traffic related to fragmentation"): a request took a block from
  another migratetype's free list; `fallback_migratetype` is that list's type, so the
  type the block's pageblock had before a claim. Up to 6.9 __rmqueue_fallback() emits it
  and __rmqueue() then retries its own lists (the `mm_page_alloc_zone_locked` follows).
  Since 6.10 a claim returns __rmqueue_smallest() on the claimed block from inside
  steal_suitable_fallback() / try_to_claim_block() (c0cd6f557b90, "mm: page_alloc: fix
  freelist movement during block conversion"), so the claim's `mm_page_alloc_zone_locked`,
  with the new type, comes just before the extfrag of the same page; a steal
  (page_del_and_expand() in the fallback type) emits no zone_locked at all.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ingest.arrow_ints import filled_ints, is_valid
from replay.kernel.release import KernelRelease, at_least

CLAIM_TRACE_GAP = 64  # rows: a claim's zone_locked and its extfrag (same CPU, zone lock held)


def claim_take_before_extfrag(release: KernelRelease | None) -> bool:
    """Whether a claimed fallback's `mm_page_alloc_zone_locked` precedes its extfrag (6.10+,
    c0cd6f557b90); before, the extfrag comes first."""
    return at_least(release, 6, 10)


def allocation_failed(pfn: pa.ChunkedArray | pa.Array, page: pa.ChunkedArray | pa.Array
                      ) -> np.ndarray:
    """Per event, whether an allocation event says it failed: no pfn and no page."""
    return ~is_valid(pfn) & (filled_ints(page, 0) == 0)


def unplaceable(pfn: pa.ChunkedArray | pa.Array, page: pa.ChunkedArray | pa.Array
                ) -> np.ndarray:
    """Per event, a page the trace names only by its struct page pointer (no pfn)."""
    return ~is_valid(pfn) & (filled_ints(page, 0) != 0)


def sql_macros() -> str:
    """`alloc_failed(pfn, page)`: the same rule for the SQL layer."""
    return """
CREATE OR REPLACE MACRO alloc_failed(pfn, page) AS
    (pfn IS NULL AND coalesce(page, 0) = 0);
"""
