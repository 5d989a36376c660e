-- Allocations per gfp flags: requests, pages, orders and failures.
--
-- Question: which allocation flags do requests carry, at which orders, and which fail?
-- @param min_order INTEGER 0  count only requests of at least this order
-- Columns:
--   trace      dataset
--   gfp_flags  flags as the kernel prints them (names, or raw hex where no table)
--   requests   mm_page_alloc events with these flags
--   pages      pages requested: sum of 2^order
--   min_order  smallest order requested
--   max_order  largest order requested
--   failed     requests that got no page
SELECT trace,
       gfp_flags,
       count(*) AS requests,
       sum(pages("order"))::BIGINT AS pages,
       min("order") AS min_order,
       max("order") AS max_order,
       count(*) FILTER (WHERE alloc_failed(pfn, page)) AS failed
FROM events
WHERE event = 'mm_page_alloc' AND "order" >= $min_order
GROUP BY trace, gfp_flags
ORDER BY trace, requests DESC, gfp_flags;
