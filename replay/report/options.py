"""The report's options: which candidate max orders, searches and policies to sweep."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from replay.dataset import SNAPSHOTS_DIR
from replay.engine.memarea import SEARCHES
from replay.kernel.orders import MAX_ORDER_LIMIT
from replay.kernel.pagestate import POLICIES
from replay.report.recommend import Bar



@dataclass(frozen=True)
class ReportOptions:
    """Everything that changes a report's figures; written into report.json."""

    max_orders: tuple[int, ...] = tuple(range(3, 11))
    searches: tuple[str, ...] = SEARCHES
    policies: tuple[str, ...] = POLICIES
    #: directory of /proc snapshots (start-zoneinfo, end-buddyinfo) for the engine's layout
    #: and fidelity; None: the dataset's own snapshots/
    snapshots: str | None = None
    bar: Bar = Bar()
    #: THP assumed disabled on the kernel with the lower max order: the HPAGE_PMD_ORDER
    #: floor is lifted and THP requests count as falling back to base pages
    assume_no_thp: bool = False

    def snapshot_dir(self, dataset: Path) -> Path:
        """Where the engine looks for /proc snapshots of `dataset`."""
        return Path(self.snapshots) if self.snapshots else dataset / SNAPSHOTS_DIR

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bar"] = self.bar.as_dict()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def parse_orders(text: str) -> tuple[int, ...]:
    """Candidate max orders from `3..10`, `5,6,10` or a mix (`3..5,8`), sorted, unique."""
    orders: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        lo, sep, hi = part.partition("..")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise ValueError(f"{part!r} is not an order or a range like 3..10") from None
        if not 0 <= first <= last <= MAX_ORDER_LIMIT:
            raise ValueError(f"{part!r}: orders must rise within 0..{MAX_ORDER_LIMIT}")
        orders.update(range(first, last + 1))
    return tuple(sorted(orders))


def parse_names(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """A comma-separated subset of `allowed`, in the order `allowed` lists them."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(allowed)
    if unknown or not names:
        raise ValueError(f"unknown {what} {sorted(unknown)}; choose from {', '.join(allowed)}")
    return tuple(n for n in allowed if n in names)


def report_options(max_orders: str, searches: str, policies: str, bar_policy: str,
                   min_satisfied: float, snapshots: Path | None = None,
                   assume_no_thp: bool = False) -> ReportOptions:
    """The options of `replay report`'s command line; ValueError names what is wrong."""
    pols = parse_names(policies, POLICIES, "policy")
    if bar_policy not in pols:
        raise ValueError(f"--bar-policy {bar_policy} is not among the swept policies "
                         f"({', '.join(pols)})")
    if not 0 < min_satisfied <= 1:
        raise ValueError(f"--min-satisfied {min_satisfied} is not a share in (0, 1]")
    if snapshots is not None and not Path(snapshots).is_dir():
        raise ValueError(f"--snapshots {snapshots}: no such directory")
    return ReportOptions(parse_orders(max_orders), parse_names(searches, SEARCHES, "search"),
                         pols, str(Path(snapshots).resolve()) if snapshots else None,
                         Bar(policy=bar_policy, min_satisfied=min_satisfied), assume_no_thp)
