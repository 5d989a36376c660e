"""Who asks for a high-order block, and what the kernel does when that order is not there.

Every mm_page_alloc request gets a requester class from its gfp flags (as the trace
prints them), its call path (when the trace has stacks) and its comm. Each class states
what its caller does when the order is unavailable — with a max order N below the
request's order, the buddy allocator cannot serve it at all:

- `fallback`: the caller retries with smaller pages; no contiguous allocator is needed,
  but the request loses its large page (a THP fault maps base pages instead);
- `contiguous`: the caller needs exactly this many contiguous pages; above N only a slow
  contiguous allocator (memarea, the kernel's `alloc_contig_pages`) can serve it.

The rules are one table (`RULES`, first match wins); `classify()` applies it in Python
and `sql_case()` writes the same rules as one SQL CASE expression, which
`queries/request_classes.sql` embeds (a test keeps the file equal to `sql_case()`).

Kernel source: read in Linux 6.12.118 (Debian's linux-source-6.12), linked at the
stable tree's v6.12.118 tag; each fact names the file and function, so a line that moved
in another release is found by name. `since` names the release that brought the behaviour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The release whose source the line numbers below were read from.
KERNEL_TAG = "v6.12.118"
KERNEL_TREE = "https://git.kernel.org/pub/scm/linux/kernel/git/stable/linux.git/tree"

#: HPAGE_PMD_ORDER with 4 KiB pages on x86-64 (include/linux/huge_mm.h: HPAGE_PMD_SHIFT
#: - PAGE_SHIFT = 21 - 12). The order of a PMD-mapped THP and of a 2 MB hugetlb page.
HPAGE_PMD_ORDER = 9
#: PAGE_ALLOC_COSTLY_ORDER (include/linux/mmzone.h): above it the allocator no longer
#: retries hard; requests above it are the ones a lower max order affects.
PAGE_ALLOC_COSTLY_ORDER = 3
#: SKB_FRAG_PAGE_ORDER = get_order(32768) with 4 KiB pages (include/net/sock.h).
SKB_FRAG_PAGE_ORDER = 3

FALLBACK = "fallback"
CONTIGUOUS = "contiguous"


@dataclass(frozen=True)
class Source:
    """One line of kernel source a fact rests on."""

    path: str
    line: int
    #: the function (or, with `macro`, the macro) the line belongs to
    function: str
    macro: bool = False

    @property
    def url(self) -> str:
        return f"{KERNEL_TREE}/{self.path}?h={KERNEL_TAG}#n{self.line}"

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.function}{'' if self.macro else '()'}"


@dataclass(frozen=True)
class RequesterClass:
    """A kind of requester and what its caller does without the order it asked for."""

    name: str
    title: str
    #: FALLBACK (smaller pages) or CONTIGUOUS (must have the whole block)
    when_unavailable: str
    #: what the kernel does, in one sentence
    behaviour: str
    source: Source
    #: the release (and commit title) that brought this behaviour
    since: str


CLASSES: tuple[RequesterClass, ...] = (
    RequesterClass(
        "thp", "THP (PMD order)", FALLBACK,
        "do_huge_pmd_anonymous_page() allocates the PMD-order folio with vma_alloc_folio() "
        "and, when it fails, counts THP_FAULT_FALLBACK and returns VM_FAULT_FALLBACK: the "
        "fault is served with base pages",
        Source("mm/huge_memory.c", 1380, "do_huge_pmd_anonymous_page"),
        "2.6.38 (transparent hugepages, Andrea Arcangeli)"),
    RequesterClass(
        "mthp", "mTHP (anonymous multi-size THP)", FALLBACK,
        "alloc_anon_folio() tries each enabled order from the highest down "
        "(next_order()) and ends with an order-0 folio",
        Source("mm/memory.c", 4719, "alloc_anon_folio"),
        "6.8 (\"mm: thp: support allocation of anonymous multi-size THP\")"),
    RequesterClass(
        "hugetlb", "hugetlb pool page", CONTIGUOUS,
        "alloc_fresh_hugetlb_folio() has no smaller page to offer: the pool page is "
        "allocated whole, by the buddy allocator (alloc_buddy_hugetlb_folio, "
        "__GFP_RETRY_MAYFAIL) while its order is at most MAX_PAGE_ORDER, and as a "
        "gigantic page (hstate_is_gigantic: order > MAX_PAGE_ORDER) by "
        "alloc_gigantic_folio() through alloc_contig_pages() otherwise",
        Source("mm/hugetlb.c", 2104, "alloc_fresh_hugetlb_folio"),
        "3.16 (runtime gigantic pages via alloc_contig_range); 5.6 alloc_contig_pages()"),
    RequesterClass(
        "pagecache", "page-cache large folio", FALLBACK,
        "__filemap_get_folio() tries the large order with __GFP_NORETRY | __GFP_NOWARN "
        "and loops `while (order-- > min_order)` down to the mapping's minimum folio order",
        Source("mm/filemap.c", 1969, "__filemap_get_folio"),
        "6.6 (\"filemap: allow __filemap_get_folio to allocate large folios\"); "
        "min_order 6.12"),
    RequesterClass(
        "slab", "slab (falls back to its minimum order)", FALLBACK,
        "allocate_slab() tries the cache's preferred order oo with __GFP_NORETRY (and, "
        "above the minimum order, without direct reclaim); on failure it retries with "
        "s->min, the smallest order one object fits in",
        Source("mm/slub.c", 2650, "allocate_slab"),
        "2.6.26 (\"slub: Fallback to minimal order during slab page allocation\")"),
    RequesterClass(
        "network", "network (skb / page_frag)", FALLBACK,
        "alloc_skb_with_frags() tries high orders without direct reclaim and steps "
        "`order--` on failure; skb_page_frag_refill() tries SKB_FRAG_PAGE_ORDER then one "
        "page",
        Source("net/core/skbuff.c", 6691, "alloc_skb_with_frags"),
        "3.18 alloc_skb_with_frags(); 3.7 skb_page_frag_refill() (per-task frag allocator)"),
    RequesterClass(
        "must_succeed", "other kernel, must succeed", CONTIGUOUS,
        "no smaller order is tried by the caller (no __GFP_NORETRY): the request needs the "
        "whole block, so above N a contiguous allocator must serve it — or, when it "
        "cannot sleep, nothing can",
        Source("mm/page_alloc.c", 6885, "alloc_contig_pages"),
        "5.6 alloc_contig_pages() (the kernel's own contiguous path)"),
    RequesterClass(
        "opportunistic", "other kernel, opportunistic", FALLBACK,
        "__GFP_NORETRY: the caller is written to survive a failure (e.g. kvmalloc() falls "
        "back to vmalloc)",
        Source("mm/slub.c", 2644, "allocate_slab"),
        "the __GFP_NORETRY contract (include/linux/gfp_types.h)"),
)

BY_NAME = {c.name: c for c in CLASSES}

#: Sources cited beside the classes: the constraints and the contiguous path.
HUGEPAGE_INIT = Source("mm/huge_memory.c", 922, "hugepage_init")
PAGEBLOCK_ORDER_DEF = Source("include/linux/pageblock-flags.h", 50, "pageblock_order",
                             macro=True)
HSTATE_IS_GIGANTIC = Source("include/linux/hugetlb.h", 797, "hstate_is_gigantic")
CONTIG_MIGRATE = Source("mm/page_alloc.c", 6520, "__alloc_contig_migrate_range")


@dataclass(frozen=True)
class Rule:
    """One classification rule: every given condition must hold.

    Flags are names as the trace prints them (`GFP_TRANSHUGE|__GFP_NORETRY|...`):
    `gfp_all` must all be there, one of `gfp_any` (if given), none of `gfp_none`.
    `call_path` is a regular expression searched in the call path (function names,
    innermost first, separated by ' <- '); `comm` one searched in the command name.
    """

    klass: str
    basis: str  # call path | gfp | comm
    call_path: str | None = None
    comm: str | None = None
    gfp_all: tuple[str, ...] = ()
    gfp_any: tuple[str, ...] = ()
    gfp_none: tuple[str, ...] = ()
    min_order: int | None = None
    max_order: int | None = None


_THP_MASKS = ("GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT")
_HUGETLB_MASKS = ("GFP_HIGHUSER_MOVABLE", "GFP_HIGHUSER")

#: First match wins: call paths (exact) before gfp shapes (typical), comm last.
RULES: tuple[Rule, ...] = (
    Rule("slab", "call path", call_path=r"\b(allocate_slab|alloc_slab_page|new_slab)\b"),
    Rule("network", "call path",
         call_path=r"\b(alloc_skb_with_frags|skb_page_frag_refill|sk_page_frag_refill"
                   r"|__page_frag_cache_refill|page_frag_alloc\w*)\b"),
    Rule("hugetlb", "call path",
         call_path=r"\b(\w*alloc_fresh_hugetlb_folio|alloc_buddy_hugetlb_folio"
                   r"|alloc_surplus_hugetlb_folio|alloc_pool_huge_folio)\b"),
    Rule("pagecache", "call path",
         call_path=r"\b(__filemap_get_folio|filemap_alloc_folio\w*|page_cache_ra_order"
                   r"|ra_alloc_folio)\b"),
    Rule("thp", "call path", call_path=r"\b(do_huge_pmd_anonymous_page"
         r"|vma_alloc_anon_folio_pmd|do_huge_pmd_wp_page|collapse_huge_page)\b",
         min_order=HPAGE_PMD_ORDER, max_order=HPAGE_PMD_ORDER),
    Rule("mthp", "call path", call_path=r"\balloc_anon_folio\b"),
    # gfp shapes: vma_thp_gfp_mask() builds on GFP_TRANSHUGE(_LIGHT)
    Rule("thp", "gfp", gfp_any=_THP_MASKS, min_order=HPAGE_PMD_ORDER,
         max_order=HPAGE_PMD_ORDER),
    Rule("mthp", "gfp", gfp_any=_THP_MASKS, max_order=HPAGE_PMD_ORDER - 1),
    # alloc_buddy_hugetlb_folio(): htlb_alloc_mask() | __GFP_COMP | __GFP_RETRY_MAYFAIL
    Rule("hugetlb", "gfp", gfp_all=("__GFP_RETRY_MAYFAIL", "__GFP_COMP"),
         gfp_any=_HUGETLB_MASKS),
    # allocate_slab(): | __GFP_NORETRY, and __GFP_NOMEMALLOC above s->min
    Rule("slab", "gfp", gfp_all=("__GFP_NOMEMALLOC", "__GFP_NORETRY", "__GFP_COMP")),
    # __filemap_get_folio(): mapping gfp (GFP_HIGHUSER_MOVABLE...) | __GFP_NORETRY
    Rule("pagecache", "gfp", gfp_all=("__GFP_NORETRY", "__GFP_COMP"),
         gfp_any=("GFP_HIGHUSER_MOVABLE", "GFP_NOFS", "GFP_USER", "GFP_HIGHUSER")),
    # alloc_skb_with_frags(): (GFP_KERNEL & ~__GFP_DIRECT_RECLAIM) | __GFP_COMP, order <= 3
    Rule("network", "gfp", gfp_all=("GFP_NOWAIT", "__GFP_IO", "__GFP_FS", "__GFP_COMP"),
         max_order=SKB_FRAG_PAGE_ORDER),
    Rule("network", "comm", comm=r"^(ksoftirqd/\d+|napi/.*)$",
         max_order=SKB_FRAG_PAGE_ORDER),
    Rule("opportunistic", "gfp", gfp_any=("__GFP_NORETRY",)),
)
#: The class of a request no rule matches.
DEFAULT_CLASS = "must_succeed"


def _flags(gfp: str | None) -> set[str]:
    return set((gfp or "").split("|"))


def matches(rule: Rule, order: int, gfp: str | None, comm: str | None,
            call_path: str | None) -> bool:
    """Whether `rule` holds for one request."""
    if rule.min_order is not None and order < rule.min_order:
        return False
    if rule.max_order is not None and order > rule.max_order:
        return False
    if rule.call_path is not None and not re.search(rule.call_path, call_path or ""):
        return False
    if rule.comm is not None and not re.search(rule.comm, comm or ""):
        return False
    flags = _flags(gfp)
    if not flags.issuperset(rule.gfp_all):
        return False
    if rule.gfp_any and not flags.intersection(rule.gfp_any):
        return False
    return not flags.intersection(rule.gfp_none)


def classify(order: int, gfp: str | None, comm: str | None = None,
             call_path: str | None = None) -> str:
    """The requester class of one request (a name of CLASSES)."""
    for rule in RULES:
        if matches(rule, order, gfp, comm, call_path):
            return rule.klass
    return DEFAULT_CLASS


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(map(_sql_str, names)) + "]"


def _sql_condition(rule: Rule, order: str, gfp: str, comm: str, path: str) -> str:
    flags = f"string_split(coalesce({gfp}, ''), '|')"
    parts = []
    if rule.min_order is not None:
        parts.append(f"{order} >= {rule.min_order}")
    if rule.max_order is not None:
        parts.append(f"{order} <= {rule.max_order}")
    if rule.call_path is not None:
        parts.append(f"regexp_matches(coalesce({path}, ''), {_sql_str(rule.call_path)})")
    if rule.comm is not None:
        parts.append(f"regexp_matches(coalesce({comm}, ''), {_sql_str(rule.comm)})")
    if rule.gfp_all:
        parts.append(f"list_has_all({flags}, {_sql_list(rule.gfp_all)})")
    if rule.gfp_any:
        parts.append(f"list_has_any({flags}, {_sql_list(rule.gfp_any)})")
    if rule.gfp_none:
        parts.append(f"NOT list_has_any({flags}, {_sql_list(rule.gfp_none)})")
    return " AND ".join(parts) or "true"


def sql_case(order: str = '"order"', gfp: str = "gfp_flags", comm: str = "comm",
             path: str = "call_path", indent: str = "") -> str:
    """RULES as one SQL CASE expression over the given column expressions."""
    lines = ["CASE"]
    for rule in RULES:
        lines.append(f"    WHEN {_sql_condition(rule, order, gfp, comm, path)}")
        lines.append(f"        THEN {_sql_str(rule.klass)}")
    lines += [f"    ELSE {_sql_str(DEFAULT_CLASS)}", "END"]
    return "\n".join(indent + line for line in lines)
