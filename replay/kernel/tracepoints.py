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
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def allocation_failed(pfn: pa.ChunkedArray | pa.Array, page: pa.ChunkedArray | pa.Array
                      ) -> np.ndarray:
    """Per event, whether an allocation event says it failed: no pfn and no page."""
    no_page = pc.or_kleene(pc.is_null(page), pc.equal(page, pa.scalar(0, page.type)))
    no_page = no_page.fill_null(True)
    return pc.and_(pc.is_null(pfn), no_page).to_numpy(zero_copy_only=False)


def unplaceable(pfn: pa.ChunkedArray | pa.Array, page: pa.ChunkedArray | pa.Array
                ) -> np.ndarray:
    """Per event, a page the trace names only by its struct page pointer (no pfn)."""
    has_page = pc.and_(pc.is_valid(page), pc.not_equal(page, pa.scalar(0, page.type)))
    has_page = has_page.fill_null(False)
    return pc.and_(pc.is_null(pfn), has_page).to_numpy(zero_copy_only=False)


def sql_macros() -> str:
    """`alloc_failed(pfn, page)`: the same rule for the SQL layer."""
    return """
CREATE OR REPLACE MACRO alloc_failed(pfn, page) AS
    (pfn IS NULL AND coalesce(page, 0) = 0);
"""
