-- Successful allocations per order and migratetype, named for the traced kernel.
--
-- Question: which mobility types ask for which orders? (`perf kmem --page stat`'s
-- table, with every order and the right names: Linux 4.4 swapped MOVABLE and
-- RECLAIMABLE, and perf kmem still prints the old labels.) Names come from the
-- dataset's pagetypeinfo snapshot, else its kernel release, else $kernel, else 4.4+.
-- @param kernel VARCHAR NULL  kernel release to assume where the dataset names none (e.g. 4.3)
-- Columns:
--   trace             dataset
--   order             allocation order
--   migratetype       the kernel's migratetype number
--   migratetype_name  its name in the traced kernel (as /proc/pagetypeinfo prints it)
--   requests          successful mm_page_alloc events
--   pages             pages allocated: requests * 2^order
SELECT e.trace,
       e."order",
       e.migratetype,
       migratetype_name(e.migratetype, any_value(d.migratetype_names),
                        coalesce(any_value(d.kernel_release), $kernel)) AS migratetype_name,
       count(*) AS requests,
       sum(pages(e."order"))::BIGINT AS pages
FROM events e
JOIN datasets d ON d.trace = e.trace
WHERE e.event = 'mm_page_alloc' AND (e.pfn IS NOT NULL OR e.page IS NOT NULL)
GROUP BY e.trace, e."order", e.migratetype
ORDER BY e.trace, e."order", e.migratetype;
