-- Macros shared by the named queries.
--
--   pages(order)  pages in a block of that order (2^order), as BIGINT.
--
-- The kernel facts they build on are generated from the Python rules in replay/kernel/
-- (replay.kernel.sql.kernel_macros, run before this script), one definition for the SQL
-- layer and the engine:
--   kernel_before(release, major, minor)  whether a release string is older than
--       major.minor; null when the release is unknown.
--   migratetype_name(migratetype, names, release)  the kernel's name of a migratetype
--       number (replay/kernel/migratetypes.py: numbering per era).
--   gfp_can_sleep(gfp_flags), gfp_atomic(gfp_flags)  (replay/kernel/gfp.py); null for
--       raw hex flags.
--   alloc_failed(pfn, page)  an mm_page_alloc that returned no page
--       (replay/kernel/tracepoints.py).
--   alloc_context(gfp_flags, context)  'irq' (hard/soft irq or NMI, from the context
--       bits), 'atomic' (GFP_ATOMIC), 'nowait' (no direct reclaim otherwise),
--       'can_sleep', or 'unknown'.

CREATE OR REPLACE MACRO pages(o) AS (1::BIGINT << o);

CREATE OR REPLACE MACRO alloc_context(gfp_flags, context) AS
    CASE
        WHEN coalesce(context, 0) & context_irq_bits() <> 0 THEN 'irq'
        WHEN gfp_can_sleep(gfp_flags) IS NULL THEN 'unknown'
        WHEN gfp_can_sleep(gfp_flags) THEN 'can_sleep'
        WHEN gfp_atomic(gfp_flags) THEN 'atomic'
        ELSE 'nowait'
    END;
