"""Orders the page allocator treats specially, and what a max order means.

This project says *max order N* for the largest order the buddy allocator serves,
inclusive: Linux 6.4's MAX_ORDER (23baf831a32c, "mm, treewide: redefine MAX_ORDER
sanely"), renamed MAX_PAGE_ORDER in 6.8 (5e0a760b4441); before 6.4 MAX_ORDER was
exclusive (a 2.4-era "MAX_ORDER 10" is max order 9).
"""

from __future__ import annotations

from replay.kernel.release import KernelRelease, at_least

#: MAX_PAGE_ORDER of x86-64 with 4 KiB pages (include/linux/mmzone.h, default
#: CONFIG_ARCH_FORCE_MAX_ORDER): the largest order the traced kernels serve.
KERNEL_MAX_ORDER = 10

#: PAGE_ALLOC_COSTLY_ORDER (include/linux/mmzone.h): above it the allocator stops retrying
#: and compaction matters; requests above it are the ones a lower max order affects.
COSTLY_ORDER = 3

#: HPAGE_PMD_ORDER on x86-64 with 4 KiB pages (PMD_SHIFT 21 - PAGE_SHIFT 12): a THP, and
#: the 2 MiB hugetlb page (HUGETLB_PAGE_ORDER).
HPAGE_PMD_ORDER = 9

#: The highest order a candidate max order or a traced order may take: above every
#: architecture's MAX_PAGE_ORDER (10 on x86-64, up to 13 on arm64 with 64K pages); the
#: engine's per-order arrays are sized for 0..MAX_ORDER_LIMIT.
MAX_ORDER_LIMIT = 15


def pageblock_order(max_order: int) -> int:
    """pageblock_order for a max order N: min(HUGETLB_PAGE_ORDER, N).

    include/linux/pageblock-flags.h: `#define pageblock_order MIN_T(unsigned int,
    HUGETLB_PAGE_ORDER, MAX_PAGE_ORDER)` (the cap since b3d40a2b6d10, "mm: enforce
    pageblock_order < MAX_ORDER", v6.1: a lower max order also shrinks the pageblocks that
    group pages by mobility).
    """
    return min(HPAGE_PMD_ORDER, max_order)


def pcp_high_orders(release: KernelRelease | None) -> tuple[int, ...]:
    """The orders above 0 that go through the per-CPU lists (mm/page_alloc.c
    pcp_allowed_order()).

    - before 5.13: order 0 only;
    - 5.13: orders up to PAGE_ALLOC_COSTLY_ORDER and, with THP configured, the THP order
      (44042b449872, "mm/page_alloc: allow high-order pages to be stored on the per-cpu
      lists": "extends the PCP allocator to store THP and "cheap" high-order pages").
    """
    if not at_least(release, 5, 13):
        return ()
    return (*range(1, COSTLY_ORDER + 1), HPAGE_PMD_ORDER)


def pcp_orders_mask(release: KernelRelease | None) -> int:
    """pcp_allowed_order() as a bit mask over orders (bit o set: order o uses the lists)."""
    mask = 1
    for o in pcp_high_orders(release):
        mask |= 1 << o
    return mask
