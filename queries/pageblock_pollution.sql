-- Pageblock pollution: share of pageblocks holding an unmovable allocation at the end.
--
-- Question: how many pageblocks (order-9 blocks on x86-64) would a contiguous
-- allocator find pinned by at least one unmovable allocation when the trace ended?
-- Only allocations made during the trace are known: blocks allocated before it are
-- invisible, so this is a lower bound. An allocation not freed in the trace (allocs
-- view) is live at the end; MIGRATE_UNMOVABLE is 0 in every kernel.
-- @param pageblock_order INTEGER 9  pageblock order of the traced kernel
-- Columns:
--   trace          dataset
--   blocks_seen    pageblocks any page event of the trace touched
--   blocks_live    pageblocks holding a live allocation at the end
--   blocks_polluted  pageblocks holding a live unmovable allocation at the end
--   blocks_mixed   of those, also holding a live allocation of another migratetype
--   polluted_share blocks_polluted / blocks_seen
WITH live AS (
    SELECT trace, migratetype,
           unnest(range(pfn >> $pageblock_order,
                        ((pfn + pages("order") - 1) >> $pageblock_order) + 1)) AS block
    FROM allocs
    WHERE free_seq IS NULL
),
per_block AS (
    SELECT trace, block,
           bool_or(migratetype = 0) AS unmovable,
           bool_or(migratetype IS DISTINCT FROM 0) AS other
    FROM live
    GROUP BY trace, block
),
seen AS (
    SELECT trace, count(DISTINCT block) AS blocks_seen
    FROM (SELECT trace, unnest(range(pfn >> $pageblock_order,
                                     ((pfn + pages("order") - 1) >> $pageblock_order) + 1))
                            AS block
          FROM events
          WHERE pfn IS NOT NULL AND "order" IS NOT NULL)
    GROUP BY trace
)
SELECT s.trace, s.blocks_seen,
       count(b.block) AS blocks_live,
       count(b.block) FILTER (WHERE b.unmovable) AS blocks_polluted,
       count(b.block) FILTER (WHERE b.unmovable AND b.other) AS blocks_mixed,
       round(count(b.block) FILTER (WHERE b.unmovable) / s.blocks_seen, 4) AS polluted_share
FROM seen s
LEFT JOIN per_block b ON b.trace = s.trace
GROUP BY s.trace, s.blocks_seen
ORDER BY s.trace;
