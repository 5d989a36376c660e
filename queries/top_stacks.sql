-- Top call paths per order, from the callchains (perf record -g).
--
-- Question: who asks for each order — which kernel call paths? Frames of the page
-- allocator itself (matching $skip, like perf kmem's callsite search) are left out, and
-- offsets dropped, so the same caller at different offsets counts once. User frames
-- without a symbol show as [dso] (or [user] without one), a run of them once: their
-- addresses differ between processes, and would split identical call paths. Needs stacks.
-- @param order INTEGER NULL  only this order (NULL: every order)
-- @param top INTEGER 10  call paths kept per order
-- @param depth INTEGER 6  frames shown per call path
-- @param skip VARCHAR ^_*((alloc|get_free|get_zeroed)_(frozen_)?pages?|folio_alloc|vma_alloc_folio)  regex of page-allocator frames to skip
-- Columns:
--   trace      dataset
--   order      allocation order
--   rank       1 = most requests at this order
--   requests   successful and failed mm_page_alloc events with this call path
--   pages      pages requested
--   call_path  callee <- caller frames (function names, [dso] for unnamed user code), innermost first
WITH named AS (
    SELECT trace, stack_id, depth,
           CASE WHEN symbol IS NOT NULL THEN regexp_replace(symbol, '\+0x[0-9a-fA-F]+$', '')
                WHEN context = 'user' THEN '[' || coalesce(dso, 'user') || ']'
                ELSE printf('%#x', addr) END AS fn
    FROM stacks
    WHERE NOT regexp_matches(coalesce(symbol, ''), $skip)
),
frames AS (  -- a run of unnamed user frames (ASLR addresses) counts as one frame
    SELECT * FROM (
        SELECT *, lag(fn) OVER (PARTITION BY trace, stack_id ORDER BY depth) AS prev
        FROM named)
    WHERE NOT (fn LIKE '[%]' AND fn IS NOT DISTINCT FROM prev)
),
paths AS (
    SELECT trace, stack_id,
           string_agg(fn, ' <- ' ORDER BY depth) FILTER (WHERE rn <= $depth) AS call_path
    FROM (SELECT *, row_number() OVER (PARTITION BY trace, stack_id ORDER BY depth) AS rn
          FROM frames)
    GROUP BY trace, stack_id
),
counted AS (
    SELECT e.trace, e."order", p.call_path,
           count(*) AS requests, sum(pages(e."order"))::BIGINT AS pages
    FROM events e
    JOIN paths p ON p.trace = e.trace AND p.stack_id = e.stack_id
    WHERE e.event = 'mm_page_alloc' AND ($order IS NULL OR e."order" = $order)
    GROUP BY e.trace, e."order", p.call_path
)
SELECT trace, "order",
       row_number() OVER (PARTITION BY trace, "order" ORDER BY requests DESC, call_path) AS rank,
       requests, pages, call_path
FROM counted
QUALIFY rank <= $top
ORDER BY trace, "order", rank;
