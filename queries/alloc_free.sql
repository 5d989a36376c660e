-- Alloc+freed, alloc-only, free-only requests and failures, with pages (as perf kmem).
--
-- Question: how much of the allocation history does the trace close? Unlike
-- `perf kmem --page stat`, pairs follow the allocs view (a block split and freed in
-- pieces is alloc+freed, its pieces are not free-only; a batched free repeating
-- mm_page_free counts once), and alloc-only excludes failures (perf kmem counts them).
-- Parameters: none.
-- Columns:
--   trace     dataset
--   kind      alloc+freed | alloc-only | free-only | failed
--   requests  allocations (alloc+freed, alloc-only, failed) or free events (free-only)
--   pages     pages of them (free-only: pages that ended no allocation)
WITH kinds AS (
    SELECT trace,
           CASE WHEN free_seq IS NULL THEN 'alloc-only' ELSE 'alloc+freed' END AS kind,
           count(*) AS requests, sum(pages("order"))::BIGINT AS pages
    FROM allocs
    GROUP BY ALL
    UNION ALL
    SELECT trace, 'free-only', count(*), sum(pages)::BIGINT
    FROM _free_only
    GROUP BY ALL
    UNION ALL
    SELECT trace, 'failed', count(*), sum(pages("order"))::BIGINT
    FROM events
    WHERE event = 'mm_page_alloc' AND alloc_failed(pfn, page)
    GROUP BY ALL
)
SELECT d.trace, k.kind, coalesce(c.requests, 0) AS requests, coalesce(c.pages, 0) AS pages
FROM datasets d
CROSS JOIN (VALUES (1, 'alloc+freed'), (2, 'alloc-only'), (3, 'free-only'), (4, 'failed'))
    AS k(pos, kind)
LEFT JOIN kinds c ON c.trace = d.trace AND c.kind = k.kind
ORDER BY d.trace, k.pos;
