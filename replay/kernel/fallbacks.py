"""Migratetype fallback: what the buddy allocator does when a request's own free lists are
empty, per kernel era (mm/page_alloc.c __rmqueue_fallback and its successors).

- CLASSIC (up to 6.9): __rmqueue_fallback() walks the orders from the largest down, taking
  the first fallback type with a free block (find_suitable_fallback(), fallbacks[]); a
  movable request that may not claim the block walks up from the smallest instead.
  steal_suitable_fallback() then moves the block's pageblock's free pages onto the
  requester's lists (claiming the pageblock when free plus compatible pages reach half
  of it, can_steal_fallback()), and __rmqueue() retries its own lists.
- HYGIENE (6.10-6.14): c0cd6f557b90 ("mm: page_alloc: fix freelist movement during block
  conversion", v6.10) keeps free lists true to their pageblock: the pageblock is claimed
  whole, or only the requested chunk is taken, the rest staying on the fallback type's
  lists; the walk is still largest-first.
- CLAIM_STEAL (6.15+): the fallback is split into __rmqueue_claim() (largest block first,
  try_to_claim_block()) and __rmqueue_steal() (smallest block, no ownership change) —
  c2f6ea38fc1b ("mm: page_alloc: don't steal single pages from biggest buddy") and Brendan
  Jackman's "mm/page_alloc: clarify terminology in migratetype fallback code", both v6.15.

ALLOC_NOFRAGMENT (6bb154504f8b, "mm, page_alloc: spread allocations across zones before
introducing fragmentation", v4.20): a Normal-zone request with a lower zone present first
falls back only by whole pageblocks, in every era.
"""

from __future__ import annotations

from replay.kernel.release import KernelRelease, at_least

CLASSIC, HYGIENE, CLAIM_STEAL = range(3)
ERA_NAMES = ("classic (steal_suitable_fallback, <= 6.9)",
             "freelist hygiene (6.10-6.14)", "claim/steal (6.15+)")


def fallback_era(release: KernelRelease | None) -> int:
    """The fallback era of a kernel release (the newest for an unknown release)."""
    if at_least(release, 6, 15):
        return CLAIM_STEAL
    if at_least(release, 6, 10):
        return HYGIENE
    return CLASSIC


def nofragment(release: KernelRelease | None) -> bool:
    """Whether the kernel has ALLOC_NOFRAGMENT (4.20+)."""
    return at_least(release, 4, 20)
