"""The zones the engine replays in: pfn ranges, managed sizes, watermarks, lowmem_reserve.

From the start `/proc/zoneinfo` snapshot (replay.kernel.procfs.ZoneInfo); without one,
inferred from the pfns the trace touched (one Normal zone, said so wherever it matters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ingest.errors import InputError
from replay.kernel import zones as kzones
from replay.kernel.orders import KERNEL_MAX_ORDER
from replay.kernel.procfs import ZoneInfo

#: dtype of a zone index per stream entry (a node has at most MAX_NR_ZONES zones)
ZONE_INDEX = np.int8


@dataclass(frozen=True)
class Layout:
    """The populated zones of one node's memory, in pfn order, and where they came from."""

    zones: tuple[ZoneInfo, ...]
    source: str  # "zoneinfo FILE" or "inferred from the pfns seen"

    @property
    def inferred(self) -> bool:
        return self.source.startswith("inferred")

    @property
    def end_pfn(self) -> int:
        return max(z.end_pfn for z in self.zones)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start_pfn, end_pfn, zone_type) per zone as int64 arrays for compiled code."""
        return (np.array([z.start_pfn for z in self.zones], np.int64),
                np.array([z.end_pfn for z in self.zones], np.int64),
                np.array([kzones.zone_type(z.name) for z in self.zones], np.int64))

    def watermarks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(min, low watermark per zone; protection[zone, preferred zone type]) for
        zone_watermark_ok(); zeros when the layout was inferred."""
        nz = len(self.zones)
        prot = np.zeros((nz, len(kzones.ZONE_TYPES)), np.int64)
        for i, z in enumerate(self.zones):
            prot[i, :len(z.protection)] = z.protection[:len(kzones.ZONE_TYPES)]
        return (np.array([z.wmark_min for z in self.zones], np.int64),
                np.array([z.wmark_low for z in self.zones], np.int64), prot)

    def zone_of(self, pfn: np.ndarray, dtype: type = np.int64) -> np.ndarray:
        """Zone index of each pfn as `dtype`, -1 outside every zone (a negative pfn too)."""
        start, end, _ = self.arrays()
        out = np.empty(len(pfn), dtype)
        _zone_index(np.asarray(pfn), start, end, out)
        return out

    def describe(self) -> str:
        parts = [f"{z.name} [{z.start_pfn:#x}, {z.end_pfn:#x}) managed {z.managed}"
                 for z in self.zones]
        return f"{', '.join(parts)} ({self.source})"


@numba.njit(cache=True)
def _zone_index(pfn, start, end, out):
    """out[i]: the last zone (by start pfn, ascending) starting at or below pfn[i] if it
    ends above it, else -1; a pass over the pfns with no per-pfn temporaries."""
    for i in range(len(pfn)):
        out[i] = -1
        for z in range(len(start) - 1, -1, -1):
            if start[z] <= pfn[i]:
                if pfn[i] < end[z]:
                    out[i] = z
                break


def zoneinfo_layout(zones: list[ZoneInfo], source: str, pfns: np.ndarray) -> Layout:
    """The layout of a zoneinfo snapshot; refuses one the traced pfns do not fit."""
    layout = Layout(tuple(sorted(zones, key=lambda z: z.start_pfn)), source)
    seen = pfns[pfns >= 0]
    if len(seen):
        outside = int((layout.zone_of(seen) < 0).sum())
        if outside:
            raise InputError(source.removeprefix("zoneinfo "),
                             f"{outside} traced pfns lie outside every zone "
                             "(zoneinfo from another machine?)")
    return layout


def inferred_layout(pfns: np.ndarray, max_order: int = KERNEL_MAX_ORDER) -> Layout:
    """One Normal zone covering the pfns seen, widened to whole max-order blocks."""
    pfns = pfns[pfns >= 0]
    block = 1 << max_order
    lo = int(pfns.min()) // block * block if len(pfns) else 0
    hi = (int(pfns.max()) // block + 1) * block if len(pfns) else block
    zone = ZoneInfo(0, "Normal", lo, hi - lo, hi - lo, hi - lo, 0, 0, 0, 0)
    return Layout((zone,), "inferred from the pfns seen")
