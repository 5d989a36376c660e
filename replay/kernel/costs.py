"""What a page costs the kernel's contiguous path, measured on a real kernel.

Measured by `sample_traces/measure_contig_cost.sh` on Linux 6.18.44 (x86-64, 2 CPUs,
24 GB, Firecracker VM): the method, every run and how these figures come out of them are
in docs/recommendation.md. The report turns the memarea replay's pages scanned and
pages migrated into time with them, and states them beside every figure it derives.

- Growing the 2 MB hugetlb pool (order 9 <= MAX_PAGE_ORDER) goes through the buddy
  allocator (mm/hugetlb.c alloc_buddy_hugetlb_folio()).
- Growing the 1 GB pool (order 18 > MAX_PAGE_ORDER: hstate_is_gigantic()) goes through
  alloc_contig_pages() (mm/page_alloc.c), which isolates a pfn range and migrates every
  page in use out of it (__alloc_contig_migrate_range()).
"""

from __future__ import annotations

#: ns per page of a range alloc_contig_pages() took when nothing had to be migrated
#: (median of 13 runs without migrations): the price of scanning, isolating and
#: preparing one page of a contiguous range. Applied to every page memarea's linear
#: search inspects, it over-states the search (a page only looked at costs less).
CONTIG_NS_PER_PAGE = 341.0
#: extra ns per page migrated out of the range: (run time - pages x CONTIG_NS_PER_PAGE)
#: / pgmigrate_success delta, median of the 3 runs that migrated (2.7, 5.0, 5.5 us).
MIGRATE_NS_PER_PAGE = 5000.0
#: ns per page of order-9 blocks handed out by the buddy allocator (2 MB pool growth,
#: median of 16 runs). The report values one buddy split or merge step at this
#: per-page price, the low side of what the measurement allows (a whole order-9
#: allocation, with at most one split step, costs 512 times this), so the buddy work a
#: lower N saves is not over-valued against memarea's.
BUDDY_NS_PER_PAGE = 15.7
BUDDY_NS_PER_STEP = BUDDY_NS_PER_PAGE
#: where the figures above come from, printed with them.
SOURCE = ("measured on Linux 6.18.44 x86-64 by sample_traces/measure_contig_cost.sh "
          "(docs/recommendation.md)")


def memarea_ns(pages_scanned: float, pages_migrated: float) -> float:
    """Time a memarea request costs: pages scanned and pages migrated, at the measured
    per-page costs."""
    return pages_scanned * CONTIG_NS_PER_PAGE + pages_migrated * MIGRATE_NS_PER_PAGE
