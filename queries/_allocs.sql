-- allocs: every successful mm_page_alloc paired with the free that ends it.
--
-- Pairing rule (the kernel's, docs/design.md §6, docs/formats.md §8), keyed by pfn:
--   * A block ends with one mm_page_free of the same head pfn and order when that free
--     is the next page-free event of that pfn after the allocation ("whole"): always so
--     for order-0 and compound (__GFP_COMP) blocks.
--   * A block of order > 0 that no such free ends may come back in pieces: a
--     non-compound block (no __GFP_COMP: split_page(), alloc_pages_exact()) or a split
--     folio (split_huge_page()) is freed as smaller mm_page_free's. It ends when the
--     last of its 2^order pages is freed ("pages"); a freed page ends the latest
--     allocation that covered it, and each page of a block ends at its first free.
--   * mm_page_free_batched repeats an mm_page_free of the same page (list frees emit
--     both since 2.6.34) and ends nothing by itself — except where no mm_page_free of
--     that pfn came since the last event of that pfn (2.6.32/2.6.33, where
--     mm_pagevec_free and mm_page_free_direct were disjoint): then it is the free.
--   * A free that ends no allocation of the trace is "free-only" (allocated before the
--     trace started; view _free_only). An allocation no free ends has null free columns
--     (still allocated when the trace ended, or its free was lost).
-- Only the pfn is a key: events that carry a struct page pointer but no pfn (binary
-- traces of kernels before 4.1) are not paired. With lost events, pairs near the loss
-- can be wrong; meta.json counts the losses.
--
-- Vectorized: one window pass over the alloc/free events partitioned by pfn finds the
-- "whole" pairs; only blocks left unpaired are matched page by page, through an
-- equi-join on the pageblock (pfn >> 9) with range conditions, and only over the pages
-- that loose frees actually return, so an order-9 block costs nothing unless it comes
-- back in pieces. View _pairing computes it all once (materialized CTEs); allocs,
-- _frees and _free_only read their part of it. Internally datasets are told apart by their number
-- (_events._trace): window partitions on a string key cost twice as much.
--
-- Columns of allocs:
--   trace        dataset the allocation comes from
--   alloc_seq    seq of the mm_page_alloc event
--   alloc_ts_ns  its time
--   free_seq     seq of the free that ended the block (the last page's, for "pages"); null if none
--   free_ts_ns   its time; null if none
--   lifetime_ns  free_ts_ns - alloc_ts_ns; null if not freed in the trace
--   freed_as     'whole' (one free of the same pfn and order), 'pages' (in pieces), null
--   pfn          head page frame number
--   order        allocation order (2^order pages)
--   gfp          raw gfp bits where known
--   gfp_flags    gfp flags as the kernel prints them
--   migratetype  the kernel's migratetype number (names: migratetype_name())
--   cpu, pid, comm, context, stack_id   of the allocating event

CREATE OR REPLACE VIEW _pairing AS
WITH page_events AS MATERIALIZED (
    SELECT _trace, seq, ts_ns, event, pfn, "order",
           -- the last event of this pfn other than a batched free, before this one
           last_value(CASE WHEN event <> 'mm_page_free_batched'
                           THEN {'event': event, 'seq': seq, 'order': "order"} END IGNORE NULLS)
               OVER (PARTITION BY _trace, pfn ORDER BY seq
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev
    FROM _events
    WHERE pfn IS NOT NULL
      AND event IN ('mm_page_alloc', 'mm_page_free', 'mm_page_free_batched')
),
-- Frees that free something: every mm_page_free, and batched frees not repeating one.
-- whole_of: the allocation this free ends whole (same pfn and order, nothing between).
frees AS MATERIALIZED (
    SELECT _trace, seq, ts_ns, pfn, coalesce("order", 0) AS "order",
           CASE WHEN prev.event = 'mm_page_alloc' AND prev."order" = coalesce("order", 0)
                THEN prev.seq END AS whole_of
    FROM page_events
    WHERE event = 'mm_page_free'
       OR (event = 'mm_page_free_batched' AND prev.event IS DISTINCT FROM 'mm_page_free')
),
whole AS MATERIALIZED (
    SELECT _trace, whole_of AS alloc_seq, min(seq) AS free_seq,
           arg_min(ts_ns, seq) AS free_ts_ns
    FROM frees
    WHERE whole_of IS NOT NULL
    GROUP BY _trace, whole_of
),
-- Blocks of order > 0 that no single free ended, and frees that ended no block whole,
-- each listed once per pageblock (pfn >> 9) it touches, for the equi-join below.
loose_blocks AS (
    SELECT a._trace, a.seq, a.pfn, a."order",
           unnest(range(a.pfn >> 9, ((a.pfn + (1 << a."order") - 1) >> 9) + 1)) AS block
    FROM page_events a
    ANTI JOIN whole w ON a._trace = w._trace AND a.seq = w.alloc_seq
    WHERE a.event = 'mm_page_alloc' AND a."order" > 0
),
loose_frees AS (
    SELECT _trace, seq, ts_ns, pfn, "order",
           unnest(range(pfn >> 9, ((pfn + (1 << "order") - 1) >> 9) + 1)) AS block
    FROM frees
    WHERE whole_of IS NULL
),
overlap AS (
    SELECT DISTINCT b._trace, b.seq AS alloc_seq, b.pfn AS alloc_pfn, b."order" AS alloc_order,
           f.seq AS free_seq, f.ts_ns AS free_ts_ns, f.pfn AS free_pfn, f."order" AS free_order
    FROM loose_blocks b
    JOIN loose_frees f ON b._trace = f._trace AND b.block = f.block
    WHERE f.seq > b.seq
      AND f.pfn < b.pfn + (1 << b."order")
      AND b.pfn < f.pfn + (1 << f."order")
),
-- Pages of loose blocks returned by loose frees: each freed page goes to the latest
-- block that covered it before the free...
overlap_pages AS (
    SELECT _trace, alloc_seq, alloc_order, free_seq, free_ts_ns,
           unnest(range(greatest(alloc_pfn, free_pfn),
                        least(alloc_pfn + (1 << alloc_order), free_pfn + (1 << free_order))))
               AS page
    FROM overlap
),
freed_pages AS (
    SELECT * FROM overlap_pages
    QUALIFY row_number() OVER (PARTITION BY _trace, free_seq, page ORDER BY alloc_seq DESC) = 1
),
-- ...and each page of a loose block ends at its first free after the allocation.
page_ends AS MATERIALIZED (
    SELECT _trace, alloc_seq, any_value(alloc_order) AS alloc_order, page,
           min(free_seq) AS free_seq, arg_min(free_ts_ns, free_seq) AS free_ts_ns
    FROM freed_pages
    GROUP BY _trace, alloc_seq, page
),
-- Loose blocks all of whose pages came back: they end with their last page.
pieces AS (
    SELECT _trace, alloc_seq, max(free_seq) AS free_seq,
           arg_max(free_ts_ns, free_seq) AS free_ts_ns
    FROM page_ends
    GROUP BY _trace, alloc_seq
    HAVING count(*) = (1 << any_value(alloc_order))
),
-- Frees (or the pages of frees) that end no allocation of the trace.
free_only AS (
    SELECT f._trace, f.seq, f.ts_ns, f.pfn, f."order",
           (1 << f."order") - coalesce(o.pages, 0) AS pages
    FROM frees f
    LEFT JOIN (SELECT _trace, free_seq, count(*) AS pages FROM page_ends GROUP BY ALL) o
           ON f._trace = o._trace AND f.seq = o.free_seq
    WHERE f.whole_of IS NULL AND coalesce(o.pages, 0) < (1 << f."order")
)
SELECT 'whole' AS kind, _trace, alloc_seq, free_seq, free_ts_ns,
       NULL::BIGINT AS pfn, NULL::SMALLINT AS "order", NULL::BIGINT AS pages
FROM whole
UNION ALL
SELECT 'pages', _trace, alloc_seq, free_seq, free_ts_ns, NULL, NULL, NULL
FROM pieces
UNION ALL
SELECT 'free-only', _trace, NULL, seq, ts_ns, pfn, "order", pages
FROM free_only
UNION ALL
SELECT 'free', _trace, whole_of, seq, ts_ns, pfn, "order", 1::BIGINT << "order"
FROM frees;

CREATE OR REPLACE VIEW allocs AS
SELECT e.trace,
       e.seq AS alloc_seq,
       e.ts_ns AS alloc_ts_ns,
       p.free_seq,
       p.free_ts_ns,
       p.free_ts_ns - e.ts_ns AS lifetime_ns,
       p.kind AS freed_as,
       e.pfn, e."order", e.gfp, e.gfp_flags, e.migratetype,
       e.cpu, e.pid, e.comm, e.context, e.stack_id
FROM _events e
LEFT JOIN (SELECT * FROM _pairing WHERE kind IN ('whole', 'pages')) p
       ON e._trace = p._trace AND e.seq = p.alloc_seq
WHERE e.event = 'mm_page_alloc' AND e.pfn IS NOT NULL;

-- Every free that frees something (mm_page_free, batched frees not repeating one).
--   trace, seq, ts_ns, pfn, order   of the free event
--   pages   2^order
CREATE OR REPLACE VIEW _frees AS
SELECT t.trace, p.free_seq AS seq, p.free_ts_ns AS ts_ns, p.pfn, p."order", p.pages
FROM _pairing p
JOIN _traces t ON t._trace = p._trace
WHERE p.kind = 'free';

-- Frees (or the pages of frees) that end no allocation of the trace: "free-only".
--   trace, seq, ts_ns, pfn, order   of the free event
--   pages   pages of it that ended no allocation (2^order unless it also ended pieces)
CREATE OR REPLACE VIEW _free_only AS
SELECT t.trace, p.free_seq AS seq, p.free_ts_ns AS ts_ns, p.pfn, p."order", p.pages
FROM _pairing p
JOIN _traces t ON t._trace = p._trace
WHERE p.kind = 'free-only';
