"""The reconstructed end-of-trace free blocks checked against the kernel's /proc/buddyinfo.

The observed replay ends with a page-exact occupancy; cut into the blocks a fully
coalesced buddy allocator would hold, it should give the free blocks per zone and order
that `end-buddyinfo` (taken as `replay record` stopped tracing) shows. It cannot match
exactly: pages on per-CPU lists count as free in the replay but are not in buddyinfo,
events in flight while the snapshot was read, and pages the start state guessed wrong.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from replay.engine.layout import ZONE_HEADER, Layout


def pcp_pages(zoneinfo: str) -> dict[str, int]:
    """Pages on the per-CPU lists per zone (`node/zone`): the `count:` lines under each
    zone's `pagesets` in a /proc/zoneinfo text."""
    out: dict[str, int] = {}
    zone = None
    for line in zoneinfo.splitlines():
        m = ZONE_HEADER.match(line)
        if m:
            zone = f"{m.group(1)}/{m.group(2)}"
            out[zone] = 0
            continue
        m = re.match(r"^\s+count:\s+(\d+)", line)
        if m and zone is not None:
            out[zone] += int(m.group(1))
    return out


def end_state_agreement(layout: Layout, end_blocks: np.ndarray,
                        buddyinfo: dict[str, list[int]],
                        pcp: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Per zone in both: free blocks per order reconstructed and in buddyinfo, the error
    per order (reconstructed - buddyinfo), the page-weighted relative error
    (Σ|error|·2^order / Σ buddyinfo·2^order) and, from an end zoneinfo (`pcp_pages`), the
    pages on per-CPU lists, which the replay counts as free and buddyinfo does not."""
    rows = []
    for z, zone in enumerate(layout.zones):
        real = buddyinfo.get(f"{zone.node}/{zone.name}")
        if real is None:
            continue
        n = min(len(real), end_blocks.shape[1])
        rec = np.asarray(end_blocks[z, :n], np.int64)
        kernel = np.asarray(real[:n], np.int64)
        err = rec - kernel
        weight = np.int64(1) << np.arange(n, dtype=np.int64)
        pages = int((kernel * weight).sum())
        rows.append({
            "zone": f"{zone.node}/{zone.name}",
            "reconstructed": rec.tolist(),
            "buddyinfo": kernel.tolist(),
            "error": err.tolist(),
            "free_pages_reconstructed": int((rec * weight).sum()),
            "free_pages_buddyinfo": pages,
            "page_weighted_error": float((np.abs(err) * weight).sum() / pages) if pages else None,
            "pcp_pages": (pcp or {}).get(f"{zone.node}/{zone.name}"),
        })
    return rows


def agreement_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Text lines: per zone, reconstructed / buddyinfo / error per order."""
    if not rows:
        return []
    orders = max(len(r["error"]) for r in rows)
    head = "order".ljust(26) + "".join(f"{o:>8}" for o in range(orders)) + "   pages"
    lines = ["free blocks at trace end per zone and order, reconstructed vs /proc/buddyinfo:",
             head]
    for r in rows:
        for what, key, pages in (("reconstructed", "reconstructed", "free_pages_reconstructed"),
                                 ("buddyinfo", "buddyinfo", "free_pages_buddyinfo"),
                                 ("error", "error", None)):
            label = f"  {r['zone']} {what}".ljust(26)
            tail = f"{r[pages]:>8}" if pages else (
                f"  ({100 * r['page_weighted_error']:.1f}% of free pages)"
                if r["page_weighted_error"] is not None else "")
            lines.append(label + "".join(f"{v:>8}" for v in r[key]) + tail)
        if r["pcp_pages"] is not None:
            excess = r["free_pages_reconstructed"] - r["free_pages_buddyinfo"]
            lines.append(f"  {r['zone']}: {excess:+} free pages vs buddyinfo; "
                         f"{r['pcp_pages']} pages on per-CPU lists at the end (zoneinfo)")
    return lines
