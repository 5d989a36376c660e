-- Requests and pages per order and event.
--
-- Question: how many page events of each kind, covering how many pages, at each order?
-- The demand of Q1 at a glance. Failed allocations are requests too (perf kmem counts
-- them), and are also counted apart. mm_page_free_batched repeats mm_page_free (since
-- 2.6.34): do not add the two. mm_page_alloc_extfrag has no order and is left out.
-- Parameters: none.
-- Columns:
--   trace     dataset
--   event     kmem event name (mm_page_alloc, mm_page_free, ...)
--   order     order of the event (2^order pages)
--   requests  number of events
--   pages     pages they cover: requests * 2^order
--   failed    of them, mm_page_alloc events that got no page
SELECT trace,
       event,
       "order",
       count(*) AS requests,
       sum(pages("order"))::BIGINT AS pages,
       count(*) FILTER (WHERE event = 'mm_page_alloc' AND alloc_failed(pfn, page))
           AS failed
FROM events
WHERE "order" IS NOT NULL
GROUP BY trace, event, "order"
ORDER BY trace, event, "order";
