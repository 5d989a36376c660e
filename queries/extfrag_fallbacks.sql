-- External-fragmentation fallbacks (mm_page_alloc_extfrag), by order and migratetype.
--
-- Question: how often did the buddy allocator have to take a block from another
-- migratetype's free list, and did it steal the whole pageblock (change_ownership)?
-- Each such fallback is a step towards mixed pageblocks.
-- @param kernel VARCHAR NULL  kernel release to assume where the dataset names none
-- Columns:
--   trace                     dataset
--   alloc_order               order requested
--   fallback_order            order of the block taken from the other list
--   alloc_migratetype_name    migratetype requested
--   fallback_migratetype_name migratetype of the list it fell back to
--   fallbacks                 events
--   ownership_changed         of them, with the pageblock taken over (change_ownership=1)
SELECT e.trace, e.alloc_order, e.fallback_order,
       migratetype_name(e.alloc_migratetype, any_value(d.migratetype_names),
                        coalesce(any_value(d.kernel_release), $kernel))
           AS alloc_migratetype_name,
       migratetype_name(e.fallback_migratetype, any_value(d.migratetype_names),
                        coalesce(any_value(d.kernel_release), $kernel))
           AS fallback_migratetype_name,
       count(*) AS fallbacks,
       count(*) FILTER (WHERE e.change_ownership = 1) AS ownership_changed
FROM events e
JOIN datasets d ON d.trace = e.trace
WHERE e.event = 'mm_page_alloc_extfrag'
GROUP BY e.trace, e.alloc_order, e.fallback_order, e.alloc_migratetype, e.fallback_migratetype
ORDER BY e.trace, fallbacks DESC, e.alloc_order, e.fallback_order;
