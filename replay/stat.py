"""`replay stat`: the `perf kmem --page stat` summary, with the kernel's migratetype names.

Same layout as perf kmem (tools/perf/builtin-kmem.c print_page_summary), three fixes:
columns named as the traced kernel numbers its migratetypes (perf kmem prints the
pre-4.4 labels, so on 4.4+ its "Reclaimable" column is MOVABLE), every order present
(perf kmem's table stops at order 10 and indexes past its array above it), and pairs
from the `allocs` view (see queries/alloc_free.sql for how they differ from perf's).
"""

from __future__ import annotations

from replay.database import Database

#: perf kmem's table always shows orders 0..10 (its MAX_PAGE_ORDER 11).
PERF_ORDERS = 11
#: When meta.json has no page size (text traces): x86-64 and most other arches.
DEFAULT_PAGE_SIZE = 4096

_LABELS = {
    "alloc+freed": "Total alloc+freed requests",
    "alloc-only": "Total alloc-only requests",
    "free-only": "Total free-only requests",
    "failed": "Total allocation failures",
}


def _line(label: str, requests: int, pages: int, page_size: int) -> str:
    return f"{label:<30}: {requests:16d}   [ {pages * page_size // 1024:16d} KB ]"


def _names_source(db: Database, trace: str, kernel: str | None) -> str:
    row = db.fetch("SELECT migratetype_names, kernel_release FROM datasets WHERE trace = $t",
                   {"t": trace}).to_pylist()[0]
    names, release = row["migratetype_names"], row["kernel_release"]
    if names:
        return "from the dataset's pagetypeinfo snapshot"
    if release:
        return f"for Linux {release}"
    if kernel:
        return f"for Linux {kernel} (--kernel)"
    return "assuming Linux 4.4 or later (the dataset names no kernel; see --kernel)"


def page_stat(db: Database, kernel: str | None = None) -> str:
    """The summary and order x migratetype table of every opened dataset, as text."""
    kinds = db.fetch_query("alloc_free").to_pylist()
    table = db.fetch_query("order_migratetype", {"kernel": kernel}).to_pylist()
    totals = db.fetch("""
        WITH a AS (SELECT trace, count(*) AS n, sum(pages("order"))::BIGINT AS pages
                   FROM events WHERE event = 'mm_page_alloc' GROUP BY trace),
             f AS (SELECT trace, count(*) AS n, sum(pages)::BIGINT AS pages
                   FROM _frees GROUP BY trace)
        SELECT d.trace, coalesce(d.page_size, $default_page_size) AS page_size,
               coalesce(a.n, 0) AS allocs, coalesce(a.pages, 0) AS alloc_pages,
               coalesce(f.n, 0) AS frees, coalesce(f.pages, 0) AS free_pages
        FROM datasets d LEFT JOIN a ON a.trace = d.trace LEFT JOIN f ON f.trace = d.trace
        ORDER BY d.trace""", {"default_page_size": DEFAULT_PAGE_SIZE}).to_pylist()
    out = []
    for t in totals:
        trace, page_size = t["trace"], t["page_size"]
        out += [f"\nSUMMARY (page allocator): {trace}", "=" * 24,
                _line("Total allocation requests", t["allocs"], t["alloc_pages"], page_size),
                _line("Total free requests", t["frees"], t["free_pages"], page_size), ""]
        mine = {k["kind"]: k for k in kinds if k["trace"] == trace}
        for kind in ("alloc+freed", "alloc-only", "free-only"):
            out.append(_line(_LABELS[kind], mine[kind]["requests"], mine[kind]["pages"],
                             page_size))
        out += ["", _line(_LABELS["failed"], mine["failed"]["requests"],
                          mine["failed"]["pages"], page_size), ""]
        out += _order_table(db, trace, [r for r in table if r["trace"] == trace], kernel)
    return "\n".join(out) + "\n"


def _order_table(db: Database, trace: str, rows: list[dict], kernel: str | None) -> list[str]:
    counts = {(r["order"], r["migratetype"]): r["requests"] for r in rows}
    max_order = max([PERF_ORDERS - 1] + [o for o, _ in counts if o is not None])
    max_mt = max([3] + [m for _, m in counts if m is not None])
    named = db.fetch("""
        SELECT m, migratetype_name(m::SMALLINT, d.migratetype_names,
                                   coalesce(d.kernel_release, $kernel)) AS name
        FROM datasets d, range(0, $n) t(m) WHERE d.trace = $trace""",
        {"kernel": kernel, "n": max_mt + 1, "trace": trace}).to_pylist()
    names = {r["m"]: r["name"] for r in named}
    widths = [max(12, len(names[m])) for m in range(max_mt + 1)]
    lines = [
        f"Migratetypes named {_names_source(db, trace, kernel)}.",
        "Order" + "".join(f"  {names[m]:>{w}}" for m, w in enumerate(widths)),
        "-----" + "".join("  " + "-" * w for w in widths),
    ]
    for order in range(max_order + 1):
        cells = (counts.get((order, m)) for m in range(max_mt + 1))
        lines.append(f"{order:5d}" + "".join(
            f"  {c if c else '.':>{w}}" for c, w in zip(cells, widths)))
    unknown = sum(n for (o, m), n in counts.items() if o is None or m is None)
    if unknown:
        lines.append(f"(+ {unknown} allocations with no order or migratetype)")
    return lines
