"""The kernel's /proc memory files, parsed: zoneinfo, buddyinfo, pagetypeinfo, kpageflags.

One home for everything the engine, the fidelity check and the report read out of /proc
snapshots, and for how a snapshot directory names its files. Formats are those of
mm/vmstat.c (zoneinfo_show_print, frag_show_print, pagetypeinfo_showfree_print,
pagetypeinfo_showblockcount_print) and fs/proc/page.c (kpageflags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zstandard

from ingest.errors import InputError

#: The `Node N, zone NAME` line that opens a zone in /proc/zoneinfo, buddyinfo, pagetypeinfo.
ZONE_HEADER = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)")
_ZONE_FIELD = re.compile(
    r"^\s+(?:pages free|spanned|present|managed|min|low|high|start_pfn:)\s+(\d+)")
_FIELD_NAME = re.compile(r"^\s+(pages free|spanned|present|managed|min|low|high|start_pfn)")
_PROTECTION = re.compile(r"^\s+protection:\s+\(([\d,\s]*)\)")
_PCP_COUNT = re.compile(r"^\s+count:\s+(\d+)")
_FREE_ROW = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+),\s+type\s+(\S+)\s+(.*)$")
_BLOCKS_HEAD = re.compile(r"^Number of blocks type\s+(.*)$")

#: include/uapi/linux/kernel-page-flags.h bits used here.
KPF_DIRTY, KPF_LRU, KPF_SLAB, KPF_WRITEBACK, KPF_BUDDY = 4, 5, 7, 8, 10
KPF_ANON, KPF_SWAPBACKED, KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL = 12, 14, 15, 16
KPF_HUGE, KPF_UNEVICTABLE, KPF_NOPAGE, KPF_THP, KPF_OFFLINE = 17, 18, 20, 22, 23
KPF_PGTABLE, KPF_RESERVED, KPF_MLOCKED = 26, 32, 33

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZoneInfo:
    """One populated zone of /proc/zoneinfo: its pfn range, sizes and watermarks."""

    node: int
    name: str
    start_pfn: int
    spanned: int
    present: int
    managed: int  # pages the buddy allocator manages (present less reserved)
    free: int  # "pages free": NR_FREE_PAGES (buddy lists only)
    wmark_min: int
    wmark_low: int
    wmark_high: int
    #: lowmem_reserve[]: pages this zone keeps back from requests whose preferred zone is
    #: of type i (mm/page_alloc.c setup_per_zone_lowmem_reserve)
    protection: tuple[int, ...] = ()
    pcp_pages: int = 0  # pages on the per-CPU lists ("count:" under "pagesets")
    counters: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return f"{self.node}/{self.name}"

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned


def parse_zoneinfo(text: str, path: str | Path = "zoneinfo") -> list[ZoneInfo]:
    """The populated zones of a /proc/zoneinfo text, in file order (empty zones dropped:
    they print no start_pfn)."""
    zones: list[ZoneInfo] = []
    cur: dict | None = None

    def close() -> None:
        if cur is None or cur.get("present", 1) == 0 or cur.get("spanned", 1) == 0:
            return
        missing = {"spanned", "present", "start_pfn"} - set(cur)
        if missing:
            raise InputError(path, f"zone {cur['name']} lacks {', '.join(sorted(missing))}")
        zones.append(ZoneInfo(
            cur["node"], cur["name"], cur["start_pfn"], cur["spanned"], cur["present"],
            cur.get("managed", cur["present"]), cur.get("pages free", 0),
            cur.get("min", 0), cur.get("low", 0), cur.get("high", 0),
            tuple(cur.get("protection", ())), cur.get("pcp", 0), cur["counters"]))

    in_pagesets = False
    for line in text.splitlines():
        m = ZONE_HEADER.match(line)
        if m:
            close()
            cur = {"node": int(m.group(1)), "name": m.group(2), "counters": {}}
            in_pagesets = False
            continue
        if cur is None:
            continue
        if line.strip() == "pagesets":
            in_pagesets = True
            continue
        if in_pagesets:
            c = _PCP_COUNT.match(line)
            if c:
                cur["pcp"] = cur.get("pcp", 0) + int(c.group(1))
        f = _ZONE_FIELD.match(line)
        if f:
            name = _FIELD_NAME.match(line).group(1)
            cur.setdefault(name, int(f.group(1)))
            continue
        p = _PROTECTION.match(line)
        if p:
            cur["protection"] = [int(x) for x in p.group(1).replace(",", " ").split()]
            continue
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("nr_") and parts[1].isdigit():
            cur["counters"][parts[0]] = int(parts[1])
    close()
    if not zones:
        raise InputError(path, "no populated zone found (not a /proc/zoneinfo snapshot?)")
    return zones


def parse_buddyinfo(text: str) -> dict[str, list[int]]:
    """Free blocks per order for each zone of a /proc/buddyinfo text, keyed `node/zone`."""
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        m = re.match(r"^Node\s+(\d+),\s+zone\s+(\S+)\s+(.*)$", line)
        if m:
            out[f"{m.group(1)}/{m.group(2)}"] = [int(x) for x in m.group(3).split()]
    return out


@dataclass(frozen=True)
class PageTypeInfo:
    """/proc/pagetypeinfo: free blocks per zone, migratetype and order, and pageblocks per
    zone and migratetype, with the migratetype names in the kernel's enum order."""

    types: tuple[str, ...]
    free: dict[str, dict[str, list[int]]]  # zone key -> type name -> blocks per order
    blocks: dict[str, dict[str, int]]  # zone key -> type name -> pageblocks


def _count(text: str) -> int:
    """A free count; kernels since 5.4 cap them at 100000 and print ">100000"."""
    return int(text.lstrip(">"))


def parse_pagetypeinfo(text: str) -> PageTypeInfo:
    """Both tables of a /proc/pagetypeinfo text."""
    free: dict[str, dict[str, list[int]]] = {}
    blocks: dict[str, dict[str, int]] = {}
    types: tuple[str, ...] = ()
    in_blocks = False
    for line in text.splitlines():
        h = _BLOCKS_HEAD.match(line)
        if h:
            types = tuple(h.group(1).split())
            in_blocks = True
            continue
        m = _FREE_ROW.match(line)
        if m and not in_blocks:
            key = f"{m.group(1)}/{m.group(2)}"
            free.setdefault(key, {})[m.group(3)] = [_count(x) for x in m.group(4).split()]
            continue
        z = ZONE_HEADER.match(line)
        if z and in_blocks:
            counts = line[z.end():].split()
            blocks[f"{z.group(1)}/{z.group(2)}"] = {
                t: int(c) for t, c in zip(types, counts)}
    return PageTypeInfo(types, free, blocks)


#: What a snapshot directory may call the start and end snapshots: `start-X`/`end-X`
#: (replay record, sample_traces/capture.sh) or `before.X`/`after.X`; `.txt` allowed.
SNAPSHOT_WHEN = {"start": ("start-{}", "before.{}"), "end": ("end-{}", "after.{}")}
#: The /proc files a snapshot directory may hold.
SNAPSHOT_FILES = ("buddyinfo", "pagetypeinfo", "zoneinfo", "meminfo")


def find_snapshot(directory: Path | None, when: str, what: str) -> Path | None:
    """The `when` ("start"/"end") snapshot of /proc/`what` in `directory`, if present."""
    if directory is None:
        return None
    for pattern in SNAPSHOT_WHEN[when]:
        for name in (pattern.format(what), pattern.format(what) + ".txt"):
            if (directory / name).is_file():
                return directory / name
    return None


def check_snapshot_dir(directory: Path) -> None:
    """Refuse a snapshot directory that holds no file this module recognises."""
    if not directory.is_dir():
        raise InputError(directory, "no such snapshot directory")
    if not any(find_snapshot(directory, w, f) for w in SNAPSHOT_WHEN for f in SNAPSHOT_FILES):
        expected = ", ".join(p.format(f) for p in SNAPSHOT_WHEN["start"] + SNAPSHOT_WHEN["end"]
                             for f in ("zoneinfo", "buddyinfo"))
        raise InputError(directory, f"no /proc snapshot recognised (expected files such as "
                         f"{expected}, with or without .txt)")


def read_text(path: Path) -> str:
    """A snapshot file's text; a one-line InputError when it cannot be read."""
    try:
        return path.read_text(errors="replace")
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror}") from None


def kpageflags(path: Path) -> np.ndarray:
    """The KPF_* bits of every pfn from a zstd-compressed /proc/kpageflags image.

    KPF_BUDDY marks every page of a free block, not only its head (stable_page_flags()
    asks is_free_buddy_page() for the others): on Linux 6.18 the free runs it gives, cut
    into aligned blocks, reproduce /proc/buddyinfo. Pages on per-CPU lists are not
    marked; holes carry KPF_NOPAGE.
    """
    parts = []
    rest = b""
    with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as z:
        while chunk := z.read(_CHUNK):
            chunk = rest + chunk
            whole = len(chunk) // 8 * 8
            rest = chunk[whole:]
            parts.append(np.frombuffer(chunk, dtype="<u8", count=whole // 8).copy())
    return np.concatenate(parts) if parts else np.zeros(0, np.uint64)


def kpageflags_free(path: Path) -> np.ndarray:
    """Per pfn, 1 where a kpageflags image says the page is free in the buddy allocator."""
    flags = kpageflags(path)
    return ((flags >> np.uint64(KPF_BUDDY)) & np.uint64(1)).astype(np.uint8)
