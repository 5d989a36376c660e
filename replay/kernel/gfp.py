"""gfp flags as the kernel prints them: what a request asks of the allocator.

Traces print gfp flags as names joined by `|` (include/trace/events/mmflags.h
`__def_gfpflag_names`: composite names such as GFP_KERNEL first, then single bits), or as
raw hex where the kernel's name table could not be read (6.10-6.12). The
answers here come from the names; a raw-hex value answers "unknown" (None).

Rules (include/linux/gfp.h, include/linux/gfp_types.h):
- migratetype: gfp_migratetype() — __GFP_MOVABLE gives MOVABLE, __GFP_RECLAIMABLE gives
  RECLAIMABLE, else UNMOVABLE;
- zone: gfp_zone() — __GFP_DMA, __GFP_DMA32, else Normal (HighMem/Movable with
  __GFP_HIGHMEM and __GFP_MOVABLE: ZONE_MOVABLE is used only when configured);
- can sleep: __GFP_DIRECT_RECLAIM (4.4+, d0164adc89f6 "mm, page_alloc: distinguish between
  being unable to sleep, unwilling to sleep and avoiding waking kswapd"), __GFP_WAIT
  before; composites that hold it;
- atomic: __GFP_HIGH (GFP_ATOMIC may dip into the reserves: ALLOC_MIN_RESERVE).
"""

from __future__ import annotations

from replay.kernel import migratetypes
from replay.kernel.zones import ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NORMAL

#: Names (single bits and composites) that include __GFP_MOVABLE.
MOVABLE_NAMES = frozenset({
    "__GFP_MOVABLE", "GFP_HIGHUSER_MOVABLE", "GFP_USER_MOVABLE", "GFP_TRANSHUGE",
    "GFP_TRANSHUGE_LIGHT", "GFP_MOVABLE_MASK"})
#: Names that include __GFP_RECLAIMABLE.
RECLAIMABLE_NAMES = frozenset({"__GFP_RECLAIMABLE", "GFP_RECLAIMABLE", "GFP_TEMPORARY"})
DMA_NAMES = frozenset({"__GFP_DMA", "GFP_DMA"})
DMA32_NAMES = frozenset({"__GFP_DMA32", "GFP_DMA32"})
#: Names that include __GFP_HIGHMEM.
HIGHMEM_NAMES = frozenset({"__GFP_HIGHMEM", "GFP_HIGHUSER", "GFP_HIGHUSER_MOVABLE",
                           "GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT"})
#: Names that allow direct reclaim (the caller can sleep).
CAN_SLEEP_NAMES = frozenset({
    "__GFP_DIRECT_RECLAIM", "__GFP_RECLAIM", "__GFP_WAIT", "GFP_WAIT", "GFP_KERNEL",
    "GFP_KERNEL_ACCOUNT", "GFP_NOFS", "GFP_NOIO", "GFP_USER", "GFP_HIGHUSER",
    "GFP_HIGHUSER_MOVABLE", "GFP_TRANSHUGE", "GFP_TEMPORARY", "GFP_IOFS"})
#: Names that include __GFP_HIGH (GFP_ATOMIC's access to the reserves).
HIGH_NAMES = frozenset({"GFP_ATOMIC", "__GFP_HIGH", "GFP_HIGH"})
#: __GFP_COMP: a compound page (a folio), freed and migrated as one.
COMP_NAMES = frozenset({"__GFP_COMP", "GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT"})
#: Page cache written through write_begin (grab_cache_page_write_begin): about to be
#: dirtied (include/linux/gfp_types.h, __GFP_WRITE).
WRITE_NAMES = frozenset({"__GFP_WRITE"})
#: Readahead's mask (mm/readahead.c readahead_gfp_mask: | __GFP_NORETRY | __GFP_NOWARN).
NORETRY_NAMES = frozenset({"__GFP_NORETRY"})
#: Anonymous faults zero their pages (vma_alloc_zeroed_movable_folio: __GFP_ZERO).
ZERO_NAMES = frozenset({"__GFP_ZERO"})
#: Anonymous THP (GFP_TRANSHUGE*, mm/huge_memory.c vma_thp_gfp_mask()).
TRANSHUGE_NAMES = frozenset({"GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT"})


def names(gfp_flags: str | None) -> frozenset[str] | None:
    """The flag names of a printed gfp value; None when it is raw hex or missing."""
    if not gfp_flags or gfp_flags.startswith("0x"):
        return None
    return frozenset(gfp_flags.split("|"))


def migratetype(gfp_flags: str | None) -> int:
    """gfp_migratetype() in the engine's numbering (UNMOVABLE when unknown)."""
    n = names(gfp_flags) or frozenset()
    if n & MOVABLE_NAMES:
        return migratetypes.MOVABLE
    if n & RECLAIMABLE_NAMES:
        return migratetypes.RECLAIMABLE
    return migratetypes.UNMOVABLE


def zone_type(gfp_flags: str | None) -> int:
    """gfp_zone(): the highest zone type the request may use (its preferred zone)."""
    n = names(gfp_flags) or frozenset()
    if n & DMA_NAMES:
        return ZONE_DMA
    if n & DMA32_NAMES:
        return ZONE_DMA32
    if n & MOVABLE_NAMES and n & HIGHMEM_NAMES:
        return ZONE_MOVABLE
    return ZONE_NORMAL


def can_sleep(gfp_flags: str | None) -> bool | None:
    """Whether the request may enter direct reclaim; None for raw hex."""
    n = names(gfp_flags)
    return None if n is None else bool(n & CAN_SLEEP_NAMES)


def has(gfp_flags: str | None, which: frozenset[str]) -> bool:
    """Whether the printed flags include any of `which`."""
    n = names(gfp_flags)
    return bool(n and n & which)


def _sql_list(values: frozenset[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in sorted(values)) + "]"


def sql_macros() -> str:
    """gfp_can_sleep(gfp_flags) and gfp_atomic(gfp_flags) from the same name sets."""
    return f"""
CREATE OR REPLACE MACRO gfp_can_sleep(gfp_flags) AS
    CASE
        WHEN gfp_flags IS NULL OR starts_with(gfp_flags, '0x') THEN NULL
        ELSE list_has_any(string_split(gfp_flags, '|'), {_sql_list(CAN_SLEEP_NAMES)})
    END;

CREATE OR REPLACE MACRO gfp_atomic(gfp_flags) AS
    list_has_any(string_split(gfp_flags, '|'), {_sql_list(HIGH_NAMES)});
"""
