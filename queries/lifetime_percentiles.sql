-- Allocation lifetimes per order: percentiles over the allocations freed in the trace.
--
-- Question: how long do blocks of each order stay allocated? Long-lived high-order
-- blocks are what a contiguous allocator must work around. Allocations not freed in
-- the trace have no lifetime and are counted apart (alive).
-- @param min_order INTEGER 0  only orders from this one up
-- Columns:
--   trace    dataset
--   order    allocation order
--   allocs   successful allocations
--   freed    of them, freed within the trace
--   alive    not freed within the trace
--   p50_ns   median lifetime of the freed ones (ns)
--   p90_ns   90th percentile
--   p99_ns   99th percentile
--   max_ns   longest
SELECT trace, "order",
       count(*) AS allocs,
       count(lifetime_ns) AS freed,
       count(*) - count(lifetime_ns) AS alive,
       quantile_disc(lifetime_ns, 0.5) AS p50_ns,
       quantile_disc(lifetime_ns, 0.9) AS p90_ns,
       quantile_disc(lifetime_ns, 0.99) AS p99_ns,
       max(lifetime_ns) AS max_ns
FROM allocs
WHERE "order" >= $min_order
GROUP BY trace, "order"
ORDER BY trace, "order";
