"""Q1 demand figures for the report, taken from the query layer's named queries.

Nothing is counted here: each figure is a row of a named query (queries/*.sql), only
selected, renamed and, where the report needs one number per order, summed.
"""

from __future__ import annotations

from typing import Any

from replay.database import Database

#: alloc_context classes of callers that cannot wait for a slow allocator.
CANNOT_SLEEP = ("irq", "atomic", "nowait")

_TOP = 10


def named_rows(db: Database, name: str, **params: Any) -> list[dict[str, Any]]:
    """The rows of named query `name` as dicts (without the `trace` column: a report is
    of one dataset); parameters given as values, passed as text (None binds NULL)."""
    text = {k: None if v is None else str(v) for k, v in params.items()}
    rel = db.query(name, text)
    return [{k: v for k, v in zip(rel.columns, row) if k != "trace"} for row in rel.fetchall()]


def order_rows(db: Database, duration_s: float | None) -> list[dict[str, Any]]:
    """mm_page_alloc requests per order (order_histogram), split by context (alloc_context)."""
    contexts: dict[int, dict[str, int]] = {}
    for r in named_rows(db, "alloc_context", min_order=0):
        contexts.setdefault(r["order"], {})[r["context"]] = r["requests"]
    out = []
    for r in named_rows(db, "order_histogram"):
        if r["event"] != "mm_page_alloc":
            continue
        ctx = contexts.get(r["order"], {})
        out.append({
            "order": r["order"],
            "requests": r["requests"],
            "failed": r["failed"],
            "pages": r["pages"],
            "rate_per_s": r["requests"] / duration_s if duration_s else None,
            "atomic": sum(ctx.get(c, 0) for c in CANNOT_SLEEP),
            "can_sleep": ctx.get("can_sleep", 0),
            "context_unknown": ctx.get("unknown", 0),
            "contexts": ctx,
        })
    return out


def collect_demand(db: Database, duration_s: float | None, high_order: int) -> dict[str, Any]:
    """Demand per order and who asks for orders >= `high_order`."""
    processes = named_rows(db, "per_process", min_order=high_order, top=_TOP)
    gfp = named_rows(db, "gfp_flags", min_order=high_order)[:_TOP]
    paths = [r for r in named_rows(db, "top_stacks", top=5) if r["order"] >= high_order]
    return {
        "high_order": high_order,
        "orders": order_rows(db, duration_s),
        "processes": processes,
        "gfp": gfp,
        "call_paths": [{**r, "path": r.pop("call_path")} for r in paths],
        "failures": named_rows(db, "failures"),
    }


def above(orders: list[dict[str, Any]], n: int, key: str) -> int:
    """Sum of `key` over the orders above max order `n`."""
    return sum(r[key] for r in orders if r["order"] > n)
