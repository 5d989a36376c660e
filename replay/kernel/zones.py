"""Zone types: `enum zone_type` of include/linux/mmzone.h, in its order.

A request may fall back from its preferred zone to lower ones, never to higher ones
(the zonelist, mm/page_alloc.c build_zonelists).
"""

from __future__ import annotations

ZONE_TYPES = ("DMA", "DMA32", "Normal", "HighMem", "Movable", "Device")
ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_HIGHMEM, ZONE_MOVABLE, ZONE_DEVICE = range(6)


def zone_type(name: str) -> int:
    """The zone type of a zone name as /proc/zoneinfo prints it (Normal if unknown)."""
    return ZONE_TYPES.index(name) if name in ZONE_TYPES else ZONE_NORMAL

#: Pages per memory section on x86-64 (arch/x86/include/asm/sparsemem.h SECTION_SIZE_BITS
#: 27 with 4 KiB pages): memory comes and goes (hotplug, holes) in whole sections.
PAGES_PER_SECTION = 1 << (27 - 12)
