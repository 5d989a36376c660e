"""Memory layout: the zones and their pfn ranges.

Taken from a `/proc/zoneinfo` snapshot (`Node N, zone NAME` headers with `spanned`,
`present` and `start_pfn`) when the dataset has one or `--zoneinfo FILE` names one;
otherwise inferred from the pfns the trace touched (one zone, printed as inferred).
Also reads `/proc/buddyinfo` snapshots for the fidelity comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.errors import InputError

#: Zone types in the kernel's `enum zone_type` order (include/linux/mmzone.h); a request
#: may fall back from its preferred zone to lower ones, never to higher ones.
ZONE_TYPES = ("DMA", "DMA32", "Normal", "HighMem", "Movable", "Device")

#: The largest order the traced 6.18 kernel serves (MAX_PAGE_ORDER, inclusive; before
#: Linux 6.4, 23f8f2d3f56c renamed MAX_ORDER with exclusive meaning: MAX_ORDER 11).
KERNEL_MAX_ORDER = 10

#: The `Node N, zone NAME` line that opens a zone in /proc/zoneinfo, buddyinfo, pagetypeinfo.
ZONE_HEADER = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)")
_FIELD = re.compile(r"^\s+(spanned|present|managed|start_pfn:?)\s+(\d+)")


@dataclass(frozen=True)
class Zone:
    """One zone: node, kernel name, and the pfn range [start_pfn, end_pfn)."""

    node: int
    name: str
    start_pfn: int
    spanned: int
    present: int

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned

    @property
    def zone_type(self) -> int:
        return ZONE_TYPES.index(self.name) if self.name in ZONE_TYPES else ZONE_TYPES.index("Normal")


@dataclass(frozen=True)
class Layout:
    """The zones of a machine (empty zones dropped), in pfn order, and where they came from."""

    zones: tuple[Zone, ...]
    source: str  # "zoneinfo FILE" or "inferred from the pfns seen"

    @property
    def inferred(self) -> bool:
        return self.source.startswith("inferred")

    @property
    def end_pfn(self) -> int:
        return max(z.end_pfn for z in self.zones)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start_pfn, end_pfn, zone_type) per zone as int64 arrays for compiled code."""
        return (
            np.array([z.start_pfn for z in self.zones], dtype=np.int64),
            np.array([z.end_pfn for z in self.zones], dtype=np.int64),
            np.array([z.zone_type for z in self.zones], dtype=np.int64),
        )

    def zone_of(self, pfn: np.ndarray) -> np.ndarray:
        """Zone index of each pfn, -1 outside every zone."""
        start, end, _ = self.arrays()
        idx = np.searchsorted(start, pfn, side="right") - 1
        ok = (idx >= 0) & (pfn < end[np.clip(idx, 0, None)])
        return np.where(ok, idx, -1)

    def describe(self) -> str:
        parts = [f"{z.name} [{z.start_pfn:#x}, {z.end_pfn:#x})" for z in self.zones]
        return f"{', '.join(parts)} ({self.source})"


def parse_zoneinfo(text: str, path: str | Path = "zoneinfo") -> Layout:
    """The zones of a `/proc/zoneinfo` text; zones with no present pages are dropped."""
    zones: list[Zone] = []
    cur: dict | None = None

    def close() -> None:
        if cur is None or cur.get("present", 1) == 0:
            return  # an empty zone prints no start_pfn
        missing = {"spanned", "present", "start_pfn"} - set(cur)
        if missing:
            raise InputError(path, f"zone {cur['name']} lacks {', '.join(sorted(missing))}")
        zones.append(Zone(cur["node"], cur["name"], cur["start_pfn"], cur["spanned"],
                          cur["present"]))

    for line in text.splitlines():
        m = ZONE_HEADER.match(line)
        if m:
            close()
            cur = {"node": int(m.group(1)), "name": m.group(2)}
            continue
        f = _FIELD.match(line)
        if f and cur is not None and f.group(1).rstrip(":") not in cur:
            cur[f.group(1).rstrip(":")] = int(f.group(2))
    close()
    if not zones:
        raise InputError(path, "no populated zone found (not a /proc/zoneinfo snapshot?)")
    zones.sort(key=lambda z: z.start_pfn)
    return Layout(tuple(zones), f"zoneinfo {path}")


def infer_layout(pfns: np.ndarray, max_order: int = KERNEL_MAX_ORDER) -> Layout:
    """One zone covering the pfns seen, widened to whole max-order blocks."""
    pfns = pfns[pfns >= 0]
    if len(pfns) == 0:
        return Layout((Zone(0, "Normal", 0, 1 << max_order, 1 << max_order),),
                      "inferred from the pfns seen (none)")
    block = 1 << max_order
    lo = int(pfns.min()) // block * block
    hi = (int(pfns.max()) // block + 1) * block
    return Layout((Zone(0, "Normal", lo, hi - lo, hi - lo),), "inferred from the pfns seen")


def parse_buddyinfo(text: str) -> dict[str, list[int]]:
    """Free blocks per order for each zone of a `/proc/buddyinfo` text, keyed `node/zone`."""
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        m = re.match(r"^Node\s+(\d+),\s+zone\s+(\S+)\s+(.*)$", line)
        if m:
            out[f"{m.group(1)}/{m.group(2)}"] = [int(x) for x in m.group(3).split()]
    return out


def find_snapshot(directory: Path | None, name: str) -> Path | None:
    """`DIR/NAME` or `DIR/NAME.txt` when it exists (the capture scripts add `.txt`)."""
    if directory is None:
        return None
    for candidate in (directory / name, directory / f"{name}.txt"):
        if candidate.is_file():
            return candidate
    return None


def load_layout(zoneinfo: Path | None, snapshots: Path | None, pfns: np.ndarray) -> Layout:
    """The layout from `--zoneinfo`, else the snapshot's start zoneinfo, else inferred."""
    path = zoneinfo or find_snapshot(snapshots, "start-zoneinfo")
    if path is None:
        return infer_layout(pfns)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InputError(path, f"cannot read zoneinfo: {e.strerror}") from None
    layout = parse_zoneinfo(text, path)
    seen = pfns[pfns >= 0]
    if len(seen):
        outside = int((layout.zone_of(seen) < 0).sum())
        if outside:
            raise InputError(path, f"{outside} traced pfns lie outside every zone "
                             "(zoneinfo from another machine?)")
    return layout
