-- High-order requests by calling context: irq, atomic, nowait or can-sleep.
--
-- Question: which high-order requests could wait for a slow contiguous allocator, and
-- which could not? 'irq': hard/soft irq or NMI (trace context bits); 'atomic':
-- GFP_ATOMIC (__GFP_HIGH, may use reserves); 'nowait': no direct reclaim otherwise
-- (GFP_NOWAIT, GFP_TRANSHUGE_LIGHT...); 'can_sleep': __GFP_DIRECT_RECLAIM (__GFP_WAIT
-- before 4.4) or a composite holding it (GFP_KERNEL, GFP_USER...); 'unknown': raw hex
-- flags without the kernel's table.
-- @param min_order INTEGER 1  lowest order counted as high-order
-- Columns:
--   trace      dataset
--   order      requested order
--   context    irq | atomic | nowait | can_sleep | unknown
--   requests   mm_page_alloc events
--   pages      pages requested
--   failed     requests that got no page
SELECT trace, "order",
       alloc_context(gfp_flags, context) AS context,
       count(*) AS requests,
       sum(pages("order"))::BIGINT AS pages,
       count(*) FILTER (WHERE alloc_failed(pfn, page)) AS failed
FROM events
WHERE event = 'mm_page_alloc' AND "order" >= $min_order
GROUP BY trace, "order", alloc_context(gfp_flags, context)
ORDER BY trace, "order", context;
