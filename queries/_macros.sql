-- Macros shared by the named queries.
--
--   pages(order)  pages in a block of that order (2^order), as BIGINT.
--   kernel_before(release, major, minor)  whether a kernel release string ("4.3.0-1",
--       "6.18.44-fc") is older than major.minor; null when the release is unknown.
--   migratetype_name(migratetype, names, release)  the kernel's name of a migratetype
--       number, as /proc/pagetypeinfo prints it. `names` is the dataset's own list (from
--       a pagetypeinfo snapshot, table datasets); else decided from the kernel release:
--       Linux 4.4 reordered the enum (MOVABLE 1 and RECLAIMABLE 2, were 2 and 1;
--       RESERVE removed, HIGHATOMIC 3 — Mel Gorman's 4.4 series). Unknown release: 4.4+.
--       Above the per-cpu types CMA and ISOLATE depend on the config: "CMA/Isolate".
--   gfp_can_sleep(gfp_flags)  whether the printed gfp flags allow direct reclaim
--       (__GFP_DIRECT_RECLAIM since 4.4, __GFP_WAIT before, or a composite that holds
--       it); null for raw hex flags, which need the kernel's bit table.
--   gfp_atomic(gfp_flags)  whether the flags are GFP_ATOMIC (may dip into reserves:
--       __GFP_HIGH) rather than plain GFP_NOWAIT.
--   alloc_context(gfp_flags, context)  'irq' (hard/soft irq or NMI, from the context
--       bits), 'atomic' (GFP_ATOMIC), 'nowait' (no direct reclaim otherwise),
--       'can_sleep', or 'unknown'.

CREATE OR REPLACE MACRO pages(o) AS (1::BIGINT << o);

CREATE OR REPLACE MACRO kernel_before(release, major, minor) AS
    TRY_CAST(regexp_extract(release, '^(\d+)\.(\d+)', 1) AS INTEGER) * 1000
        + TRY_CAST(regexp_extract(release, '^(\d+)\.(\d+)', 2) AS INTEGER)
    < major * 1000 + minor;

CREATE OR REPLACE MACRO migratetype_name(mt, names, release) AS
    CASE
        WHEN mt IS NULL THEN NULL
        WHEN names IS NOT NULL AND mt >= 0 AND mt < len(names) THEN names[mt + 1]
        WHEN mt BETWEEN 0 AND 3 AND coalesce(kernel_before(release, 4, 4), false)
            THEN ['Unmovable', 'Reclaimable', 'Movable', 'Reserve'][mt + 1]
        WHEN mt BETWEEN 0 AND 3 THEN ['Unmovable', 'Movable', 'Reclaimable', 'HighAtomic'][mt + 1]
        WHEN mt = 4 THEN 'CMA/Isolate'
        ELSE 'type ' || mt
    END;

CREATE OR REPLACE MACRO gfp_can_sleep(gfp_flags) AS
    CASE
        WHEN gfp_flags IS NULL OR regexp_full_match(gfp_flags, '0x[0-9a-fA-F]+') THEN NULL
        ELSE list_has_any(string_split(gfp_flags, '|'), [
            '__GFP_DIRECT_RECLAIM', '__GFP_RECLAIM', '__GFP_WAIT', 'GFP_WAIT',
            'GFP_KERNEL', 'GFP_KERNEL_ACCOUNT', 'GFP_NOFS', 'GFP_NOIO', 'GFP_USER',
            'GFP_HIGHUSER', 'GFP_HIGHUSER_MOVABLE', 'GFP_TRANSHUGE', 'GFP_TEMPORARY',
            'GFP_IOFS'])
    END;

CREATE OR REPLACE MACRO gfp_atomic(gfp_flags) AS
    list_has_any(string_split(gfp_flags, '|'), ['GFP_ATOMIC', '__GFP_HIGH', 'GFP_HIGH']);

CREATE OR REPLACE MACRO alloc_context(gfp_flags, context) AS
    CASE
        WHEN coalesce(context, 0) & context_irq_bits() <> 0 THEN 'irq'
        WHEN gfp_can_sleep(gfp_flags) IS NULL THEN 'unknown'
        WHEN gfp_can_sleep(gfp_flags) THEN 'can_sleep'
        WHEN gfp_atomic(gfp_flags) THEN 'atomic'
        ELSE 'nowait'
    END;
