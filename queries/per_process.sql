-- Allocations and frees per process (thread), largest page consumers first.
--
-- Question: who allocates — how many requests, pages and high orders per thread?
-- @param min_order INTEGER 0  count only allocations of at least this order
-- @param top INTEGER NULL  keep only this many threads per dataset (NULL: all)
-- Columns:
--   trace      dataset
--   pid        thread id (common_pid)
--   comm       its command name
--   requests   mm_page_alloc events
--   pages      pages requested
--   max_order  largest order requested
--   failed     requests that got no page
--   frees      mm_page_free events by this thread (any order)
WITH a AS (
    SELECT trace, pid, comm, count(*) AS requests, sum(pages("order"))::BIGINT AS pages,
           max("order") AS max_order,
           count(*) FILTER (WHERE alloc_failed(pfn, page)) AS failed
    FROM events
    WHERE event = 'mm_page_alloc' AND "order" >= $min_order
    GROUP BY trace, pid, comm
),
f AS (
    SELECT trace, pid, comm, count(*) AS frees
    FROM events
    WHERE event = 'mm_page_free'
    GROUP BY trace, pid, comm
)
SELECT a.trace, a.pid, a.comm, a.requests, a.pages, a.max_order, a.failed,
       coalesce(f.frees, 0) AS frees
FROM a
LEFT JOIN f ON f.trace = a.trace AND f.pid = a.pid AND f.comm IS NOT DISTINCT FROM a.comm
QUALIFY $top IS NULL
     OR row_number() OVER (PARTITION BY a.trace ORDER BY a.pages DESC, a.pid) <= $top
ORDER BY a.trace, a.pages DESC, a.pid, a.comm;
