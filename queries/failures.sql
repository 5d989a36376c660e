-- Failed allocations per order, gfp flags and command.
--
-- Question: which requests did the kernel refuse (mm_page_alloc with no page: pfn -1
-- or a NULL page), at which orders, from whom?
-- Parameters: none.
-- Columns:
--   trace        dataset
--   order        requested order
--   gfp_flags    flags of the request
--   comm         command of the requesting thread
--   failed       failed requests
--   first_ts_ns  time of the first such failure
--   last_ts_ns   time of the last
SELECT trace, "order", gfp_flags, comm,
       count(*) AS failed,
       min(ts_ns) AS first_ts_ns,
       max(ts_ns) AS last_ts_ns
FROM events
WHERE event = 'mm_page_alloc' AND alloc_failed(pfn, page)
GROUP BY trace, "order", gfp_flags, comm
ORDER BY trace, "order" DESC, failed DESC, gfp_flags, comm;
