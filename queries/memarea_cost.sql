-- Distribution of memarea search cost per search strategy, for one configuration.
--
-- Question: how much does each search (linear, coalesced, bitmap) inspect per request
-- (docs/design.md §1, Q3) — the whole distribution, not only the runs table's percentiles? Needs
-- a replay (`requests` view). One row per search and percentile.
-- @param mode VARCHAR simulated  observed | simulated
-- @param max_order INTEGER 5  candidate max order N
-- @param policy VARCHAR migrate  free | reclaim | migrate
-- Columns:
--   trace       dataset
--   search      linear | coalesced | bitmap
--   percentile  0, 5, ..., 100
--   cost        cost at that percentile (quantile_disc: a real request's cost)
--   requests    requests in the configuration
WITH per_search AS (
    SELECT trace, search, count(*) AS requests,
           quantile_disc(cost, [x / 20 for x in range(0, 21)]) AS costs
    FROM requests
    WHERE mode = $mode AND max_order = $max_order AND policy = $policy
    GROUP BY trace, search
)
SELECT trace, search, unnest(range(0, 101, 5)) AS percentile, unnest(costs) AS cost,
       requests
FROM per_search
ORDER BY trace, search, percentile;
