-- Allocation requests per order over time windows.
--
-- Question: how often, and how burstily, does each order get asked for? Windows are
-- counted from the first event of each dataset; windows without requests of an order
-- are left out (no zero rows).
-- @param window_ms DOUBLE>0 1000  window length in milliseconds
-- @param min_order INTEGER 0  only orders from this one up
-- Columns:
--   trace           dataset
--   window          window number, from 0
--   window_start_ns start of the window, ns after the dataset's first event
--   order           requested order
--   requests        mm_page_alloc events (failed ones included)
--   pages           pages requested
--   per_second      requests / window length
WITH start AS (
    SELECT trace, min(ts_ns) AS t0 FROM events GROUP BY trace
),
windowed AS (
    SELECT e.trace, e."order",
           ((e.ts_ns - s.t0) // CAST($window_ms * 1e6 AS BIGINT)) AS "window"
    FROM events e
    JOIN start s ON s.trace = e.trace
    WHERE e.event = 'mm_page_alloc' AND e."order" >= $min_order
)
SELECT trace, "window",
       "window" * CAST($window_ms * 1e6 AS BIGINT) AS window_start_ns,
       "order",
       count(*) AS requests,
       sum(pages("order"))::BIGINT AS pages,
       count(*) / ($window_ms / 1000.0) AS per_second
FROM windowed
GROUP BY trace, "window", "order"
ORDER BY trace, "window", "order";
