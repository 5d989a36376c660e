"""The engine's options: one frozen dataclass, written into every output it produced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from replay.dataset import SNAPSHOTS_DIR
from replay.engine.memarea import SEARCHES
from replay.kernel.orders import MAX_ORDER_LIMIT
from replay.kernel.pagestate import POLICIES

MODES = ("observed", "simulated")


class OptionError(ValueError):
    """An option value the engine cannot run with (the CLI turns it into a usage error)."""


@dataclass(frozen=True)
class SimOptions:
    """Everything that changes a simulation's results; written into every output."""

    #: candidate max orders N: the largest order the buddy allocator serves, inclusive
    #: (MAX_PAGE_ORDER semantics of Linux 6.4+; a 2.4-era MAX_ORDER of N+1)
    max_orders: tuple[int, ...] = (5, 6, 7, 8, 9, 10)
    #: memarea searches: linear (pages), coalesced (max-order blocks), bitmap (64-bit words)
    searches: tuple[str, ...] = SEARCHES
    #: memarea policies, nested: free, reclaim (also drop page cache), migrate (also move
    #: movable pages)
    policies: tuple[str, ...] = POLICIES
    #: observed (memarea's cost in the real state) and/or simulated (buddy of max order N)
    modes: tuple[str, ...] = MODES
    #: run alignment in pages; 0 means aligned to the request size (as buddy blocks are)
    align: int = 0
    #: run offset: a run starts at s with s % align == offset
    offset: int = 0
    #: zoneinfo file for the layout (else the snapshots' start zoneinfo, else inferred)
    zoneinfo: str | None = None
    #: directory of /proc snapshots (else DATASET/snapshots)
    snapshots: str | None = None
    #: the traced kernel's release, when the dataset does not say (picks the kernel era)
    kernel: str | None = None
    #: validate the simulator's invariants at every series sample (slow)
    check: bool = False
    #: points in time at which fragmentation is sampled
    series_samples: int = 64
    #: worker processes (0: every core)
    jobs: int = 0

    def configurations(self, kernel_max_order: int) -> list[tuple[str, int, str, str]]:
        """(mode, max order, search, policy), the baseline (the traced kernel's max order,
        no memarea) first."""
        out = [("simulated", kernel_max_order, "none", "none")]
        for mode in self.modes:
            for n in self.max_orders:
                for s in self.searches:
                    for p in self.policies:
                        out.append((mode, n, s, p))
        return out

    def snapshot_dir(self, dataset: Path) -> Path:
        """Where the /proc snapshots are: `snapshots`, else DATASET/snapshots."""
        return Path(self.snapshots) if self.snapshots else Path(dataset) / SNAPSHOTS_DIR

    def validate(self) -> None:
        """Raise OptionError naming the first option the engine cannot run with."""
        if not self.max_orders or any(not 0 <= n <= MAX_ORDER_LIMIT for n in self.max_orders):
            raise OptionError(f"max orders must lie in 0..{MAX_ORDER_LIMIT}")
        for name, values, known in (("search", self.searches, SEARCHES),
                                    ("policy", self.policies, POLICIES),
                                    ("mode", self.modes, MODES)):
            bad = [v for v in values if v not in known]
            if bad or not values:
                raise OptionError(f"unknown {name} {', '.join(bad) or '(none)'}: choose "
                                  f"from {', '.join(known)}")
        if self.align < 0 or self.offset < 0 or (self.align and self.offset >= self.align):
            raise OptionError("need align >= 0 and 0 <= offset < align")
